package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleReport is a report as Run builds it, with wireguard-go as the reference.
func sampleReport() *Report {
	r := &Report{
		Started: time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 27, 5, 3, 0, 0, time.UTC),
		Host: HostInfo{Kernel: "6.18.0", CPUs: 2, GoVersion: "go1.26", LoadAverage: "0.50 0.40 0.30"}, Rounds: 3, DurationSeconds: 5, Streams: 4, Pings: 50,
		Skipped: []Skipped{{System: SystemWeftL2, Reason: "no agent subcommand"}},
	}
	add := func(name string, tcp1, tcp4, rtt []float64, errs ...string) {
		r.Systems = append(r.Systems, SystemResult{Name: name, Description: name + " desc", Errors: errs, Metrics: map[string]Summary{
			MetricTCPSingle: summarize(tcp1), MetricTCPMulti: summarize(tcp4), MetricPingRTT: summarize(rtt),
		}})
	}
	add(SystemVeth, []float64{40, 42, 38}, []float64{60, 61, 59}, []float64{0.03, 0.04, 0.05})
	add(SystemVXLAN, []float64{17, 16, 18}, []float64{20, 21, 22}, []float64{0.05, 0.06, 0.04})
	add(SystemWireGuardGo, []float64{2.8, 3.0, 2.6}, []float64{3.5, 3.4, 3.6}, []float64{0.30, 0.20, 0.25})
	add(SystemWeft, []float64{3.1, 2.9, 3.3}, []float64{4, 4, 4}, []float64{0.2, 0.2, 0.2})
	add("broken", nil, []float64{1}, nil, "round 1: setup: boom")
	r.computeRatios()
	return r
}

func TestReport_computeRatios(t *testing.T) {
	r := sampleReport()
	tests := []struct {
		system, metric string
		want           float64
	}{
		{SystemWireGuardGo, MetricTCPSingle, 1},
		{SystemVeth, MetricTCPSingle, 40 / 2.8},
		{SystemVXLAN, MetricTCPMulti, 21 / 3.5},
		{SystemVXLAN, MetricPingRTT, 0.05 / 0.25},
		{"broken", MetricTCPSingle, 0},
	}
	for _, tt := range tests {
		got := r.System(tt.system).Metrics[tt.metric].Ratio
		if diff := got - tt.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s %s ratio = %v, want %v", tt.system, tt.metric, got, tt.want)
		}
	}
	r.Systems = r.Systems[:2] // without wireguard-go there is no ratio
	r.computeRatios()
	if got := r.System(SystemVeth).Metrics[MetricTCPSingle].Ratio; got != 0 {
		t.Errorf("ratio without wireguard-go = %v, want 0", got)
	}
}

func TestReport_WriteTable(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"3 round(s), iperf3 5s, 4 streams, 50 pings; kernel 6.18.0, 2 CPUs, load 0.50 0.40 0.30",
		"speed target (weft single-stream TCP >= 1.0x wireguard-go): 1.11x, met",
		"TCP 4 streams (Gbit/s)",
		"veth              -  TCP 1 stream (Gbit/s)       40.00      38.00      42.00           14.29x",
		"wireguard-go      -  ping RTT (ms)               0.250      0.200      0.300            1.00x",
		"broken            -  TCP 1 stream (Gbit/s)           -          -          -                -",
		"error: broken: round 1: setup: boom",
		"skipped: weft-l2: no agent subcommand",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestReport_UnderlayMTUs: with several underlay MTUs each system appears per MTU, named
// "system @MTU", with the overlay MTU in effect, ratios taken against wireguard-go at the
// same MTU, and a speed verdict per MTU.
func TestReport_UnderlayMTUs(t *testing.T) {
	r := &Report{Rounds: 1, DurationSeconds: 5, Streams: 4, Pings: 50, UnderlayMTUs: []int{1500, 9001}}
	for _, x := range []struct {
		name       string
		under, mtu int
		tcp1       float64
	}{{SystemWireGuardGo, 1500, 1420, 2}, {SystemWeft, 1500, 1432, 3}, {SystemWireGuardGo, 9001, 8921, 4}, {SystemWeft, 9001, 8933, 10}} {
		r.Systems = append(r.Systems, SystemResult{Name: x.name, UnderlayMTU: x.under, MTU: x.mtu,
			Metrics: map[string]Summary{MetricTCPSingle: summarize([]float64{x.tcp1})}})
	}
	r.computeRatios()
	if got := r.SystemAt(SystemWeft, 9001).Metrics[MetricTCPSingle].Ratio; got != 2.5 {
		t.Errorf("weft at 9001: ratio %v, want 2.5 (against wireguard-go at 9001)", got)
	}
	if got := r.SystemAt(SystemWeft, 1500).Metrics[MetricTCPSingle].Ratio; got != 1.5 {
		t.Errorf("weft at 1500: ratio %v, want 1.5", got)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"underlay MTU 1500,9001",
		"weft @9001           8933  TCP 1 stream (Gbit/s)       10.00",
		"wireguard-go @1500   1420  TCP 1 stream (Gbit/s)        2.00",
		"speed target (weft single-stream TCP >= 1.0x wireguard-go) at underlay MTU 9001: 2.50x, met",
		"speed target (weft single-stream TCP >= 1.0x wireguard-go) at underlay MTU 1500: 1.50x, met",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[float64]string{123.45: "123.5", 17.234: "17.23", 0.0456: "0.046", 1: "1.00"} {
		if got := formatValue(in); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestReport_WriteJSON(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	got := back.System(SystemVXLAN).Metrics[MetricTCPSingle]
	if got.Median != 17 || got.Min != 16 || got.Max != 18 || len(got.Samples) != 3 || got.Ratio == 0 {
		t.Fatalf("vxlan tcp_single after round trip: %+v", got)
	}
	for _, key := range []string{`"tcp_single"`, `"ping_rtt"`, `"ratio_to_wireguard_go"`, `"duration_seconds": 5`, `"skipped"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	if back.System("broken").Metrics[MetricTCPSingle].Valid() {
		t.Error("an empty summary became valid after the round trip")
	}
}

func TestReport_Save(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := sampleReport()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != 4 {
		t.Fatalf("Files = %v", r.Files)
	}
	prefixes := map[string]string{"chart.png": "\x89PNG", "chart.svg": "<?xml", "report.json": "{", "table.txt": "weft bench"}
	for name, prefix := range prefixes {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(prefix)) {
			t.Errorf("%s starts with %q, want %q", name, b[:min(len(b), 10)], prefix)
		}
	}
	if svg, _ := os.ReadFile(filepath.Join(dir, "chart.svg")); !bytes.Contains(svg, []byte("wireguard-go")) {
		t.Error("chart.svg does not name the systems")
	}
}
