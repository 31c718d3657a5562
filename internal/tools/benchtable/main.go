// Command benchtable turns `go test -bench` output into a table: one row per benchmark, one
// column per metric it reports (ns/op, B/op, and every custom metric), in the order first
// seen. Other lines pass through to stderr, so failures stay visible; the exit status is
// 1 when the input holds a FAIL line or no benchmark.
//
//	go test -run '^$' -bench MemberPipeline -benchtime 1x ./agent | go run ./internal/tools/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

type row struct {
	name   string
	values map[string]string
}

func main() {
	rows, units, failed := parse(os.Stdin, os.Stderr)
	if len(rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results in the input")
		os.Exit(1)
	}
	write(os.Stdout, rows, units)
	if failed {
		os.Exit(1)
	}
}

// parse reads benchmark lines ("BenchmarkX/sub-2  N  value unit  value unit …").
func parse(r io.Reader, other io.Writer) (rows []row, units []string, failed bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
				failed = true
			}
			fmt.Fprintln(other, line)
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		rw := row{name: name, values: map[string]string{}}
		for i := 2; i+1 < len(f); i += 2 {
			unit := f[i+1]
			if unit == "ns/op" && len(f) > 4 {
				continue // with -benchtime 1x, the whole run: the custom metrics say more
			}
			rw.values[unit] = f[i]
			if !seen[unit] {
				seen[unit] = true
				units = append(units, unit)
			}
		}
		rows = append(rows, rw)
	}
	return rows, units, failed
}

func write(w io.Writer, rows []row, units []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "benchmark\t")
	for _, u := range units {
		fmt.Fprint(tw, u, "\t")
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprint(tw, r.name, "\t")
		for _, u := range units {
			v := r.values[u]
			if v == "" {
				v = "-"
			}
			fmt.Fprint(tw, v, "\t")
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
