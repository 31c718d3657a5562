package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchtable(t *testing.T) {
	in := `goos: linux
BenchmarkMemberPipeline/members=100-2   1  1351299335 ns/op  0.04540 churn-%core  6162 update-p50-ns
BenchmarkMemberPipeline/members=1000-2  1  1206682069 ns/op  0.1124 churn-%core  8787 update-p50-ns
PASS
`
	var other bytes.Buffer
	rows, units, failed := parse(strings.NewReader(in), &other)
	if failed || len(rows) != 2 || strings.Join(units, ",") != "churn-%core,update-p50-ns" {
		t.Fatalf("rows %v units %v failed %v", rows, units, failed)
	}
	var out bytes.Buffer
	write(&out, rows, units)
	want := "MemberPipeline/members=1000  0.1124  8787"
	if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(want), " ")) {
		t.Fatalf("table:\n%s", out.String())
	}
	if !strings.Contains(other.String(), "goos: linux") {
		t.Fatal("non-benchmark lines are not passed on")
	}
	if _, _, failed := parse(strings.NewReader("--- FAIL: BenchmarkX\nFAIL\n"), &other); !failed {
		t.Fatal("a FAIL line is not reported")
	}
}
