// Command testreport reads `go test -json` on stdin, prints the tests' own output as go test
// would (so a run stays readable), and at the end names every test that skipped or failed.
// It exits 1 when a test or package failed, when nothing ran, or — with the CI variable set,
// as netlab.SkipOrFail reads it — when any test skipped: in CI every prerequisite is
// installed, so a skip is a check that did not happen.
//
//	go test -json -run Netns ./agent | go run ./internal/tools/testreport
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Getenv("CI") != ""))
}

func run(in io.Reader, out io.Writer, ci bool) int {
	r, err := Read(in, out)
	if err != nil {
		fmt.Fprintln(out, "testreport:", err)
		return 1
	}
	return r.Verdict(out, ci)
}
