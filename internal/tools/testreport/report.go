package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// Report is what a run did, by "package TestName".
type Report struct {
	Passed  int
	Skipped []string
	Failed  []string // tests, and packages that failed to build or failed outside a test
	Other   []string // lines that were not test2json events (go's own errors)
}

// Read streams the events of in, echoing each event's output to out, and returns the report.
func Read(in io.Reader, out io.Writer) (*Report, error) {
	r := &Report{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line)
			r.Other = append(r.Other, string(line))
			continue
		}
		name := strings.TrimSpace(e.Package + " " + e.Test)
		switch e.Action {
		case "output", "build-output":
			io.WriteString(out, e.Output)
		case "pass":
			if e.Test != "" {
				r.Passed++
			}
		case "skip":
			if e.Test != "" {
				r.Skipped = append(r.Skipped, name)
			}
		case "fail", "build-fail":
			r.Failed = append(r.Failed, name)
		}
	}
	return r, sc.Err()
}

// Verdict prints the summary and returns the exit code: 1 on a failure, on a run without a
// single passing test, and (ci) on any skip.
func (r *Report) Verdict(out io.Writer, ci bool) int {
	sort.Strings(r.Skipped)
	sort.Strings(r.Failed)
	fmt.Fprintf(out, "testreport: %d passed, %d skipped, %d failed\n", r.Passed, len(r.Skipped), len(r.Failed))
	for _, s := range r.Skipped {
		fmt.Fprintln(out, "  skipped:", s)
	}
	for _, s := range r.Failed {
		fmt.Fprintln(out, "  failed: ", s)
	}
	switch {
	case len(r.Failed) > 0:
		return 1
	case r.Passed == 0:
		fmt.Fprintln(out, "testreport: no test passed (nothing ran?)")
		return 1
	case ci && len(r.Skipped) > 0:
		fmt.Fprintln(out, "testreport: CI is set, and in CI a skipped test is a check that did not run: install what it asks for")
		return 1
	}
	return 0
}
