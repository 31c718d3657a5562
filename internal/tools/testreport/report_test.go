package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestOK"}
{"Action":"output","Package":"example.com/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestOK","Elapsed":0}
{"Action":"run","Package":"example.com/a","Test":"TestNetnsX"}
{"Action":"output","Package":"example.com/a","Test":"TestNetnsX","Output":"    x_test.go:9: iperf3 not found\n"}
{"Action":"skip","Package":"example.com/a","Test":"TestNetnsX","Elapsed":0}
{"Action":"pass","Package":"example.com/a","Elapsed":0.1}
`

func TestRun(t *testing.T) {
	failed := strings.Replace(sample, `"skip"`, `"fail"`, 1)
	buildFail := `{"ImportPath":"example.com/b","Action":"build-output","Output":"b.go:1: syntax error\n"}
{"ImportPath":"example.com/b","Action":"build-fail"}
{"Action":"fail","Package":"example.com/b","Elapsed":0}
`
	tests := []struct {
		name, in string
		ci       bool
		want     int
		says     []string
	}{
		{"skip outside CI passes", sample, false, 0, []string{"iperf3 not found", "skipped: example.com/a TestNetnsX"}},
		{"skip in CI fails", sample, true, 1, []string{"skipped: example.com/a TestNetnsX", "CI is set"}},
		{"failure fails", failed, false, 1, []string{"failed:  example.com/a TestNetnsX"}},
		{"build failure fails", buildFail, false, 1, []string{"syntax error", "failed:  example.com/b"}},
		{"nothing ran fails", "", false, 1, []string{"no test passed"}},
		{"non-JSON lines are shown", "go: cannot find main module\n", false, 1, []string{"cannot find main module"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := run(strings.NewReader(tc.in), &out, tc.ci); got != tc.want {
				t.Errorf("exit %d, want %d\n%s", got, tc.want, out.String())
			}
			for _, s := range tc.says {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}
