package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/tunnel"
)

// testWireGuardGoBin is the binary the netns test starts for wireguard-go: $WEFT_BENCH_BIN
// (set by `make test-netns`), which must have the hidden command, or without it this test
// binary, whose TestMain runs WireGuardGoMain when called as `BIN __wireguard-go ...`.
func testWireGuardGoBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("WEFT_BENCH_BIN"); bin != "" {
		// A given binary that lacks the command is the CLI's wiring broken, not a reason to
		// quietly test something else.
		if err := checkWireGuardGo(&Options{WireGuardGoBin: bin}); err != nil {
			t.Fatalf("WEFT_BENCH_BIN=%s: %v", bin, err)
		}
		return bin
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// checkMedians fails t unless Run succeeded and gave every system of names a valid,
// positive median for each metric.
func checkMedians(t *testing.T, rep *Report, err error, names []string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, name := range names {
		sys := rep.System(name)
		if sys == nil {
			t.Fatalf("no result for %s", name)
		}
		for _, key := range metricOrder {
			if slices.Contains(processMetrics, key) && (name == SystemVeth || name == SystemVXLAN) {
				if m := sys.Metrics[key]; m.Valid() {
					t.Errorf("%s %s: %+v, want none (a kernel system has no process)", name, key, m)
				}
				continue
			}
			if m := sys.Metrics[key]; !m.Valid() || m.Median <= 0 {
				t.Errorf("%s %s: %+v, want a positive median", name, key, m)
			}
		}
	}
}

func TestRun_NetnsAllBaselines(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "iperf3", "ping", "ss")
	out := t.TempDir()
	var progress bytes.Buffer
	opts := Options{
		Systems:        []string{SystemVeth, SystemVXLAN, SystemWireGuardGo},
		Rounds:         1,
		Duration:       time.Second,
		Streams:        2,
		Pings:          10,
		OutDir:         out,
		WireGuardGoBin: testWireGuardGoBin(t),
		Progress:       &progress,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Run(ctx, opts)
	t.Logf("progress:\n%s", progress.String())
	if rep != nil {
		var table strings.Builder
		_ = rep.WriteTable(&table)
		t.Logf("table:\n%s", table.String())
	}
	checkMedians(t, rep, err, opts.Systems)
	// Each overlay ran at the MTU it claims: wireguard-go's own default, the kernel vxlan's.
	for name, want := range map[string]int{SystemWireGuardGo: 1420, SystemVXLAN: 1450, SystemVeth: 0} {
		if got := rep.System(name).MTU; got != want {
			t.Errorf("%s ran with MTU %d, want %d", name, got, want)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(back.Systems) != len(opts.Systems) {
		t.Errorf("report.json has %d systems, want %d", len(back.Systems), len(opts.Systems))
	}
	for _, f := range []string{"chart.svg", "chart.png", "table.txt"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
}

// TestRun_NetnsWeft runs the weft rows (L3, L2 encrypted, L2 plain) against a real `weft agent`: $WEFT_BIN, which
// `make test-netns` builds (this test does not build it, to stay short).
func TestRun_NetnsWeft(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "iperf3", "ping", "ss", "curl")
	bin := os.Getenv("WEFT_BIN")
	if bin == "" {
		netlab.SkipOrFail(t, "WEFT_BIN not set: run `make test-netns`, or WEFT_BIN=$(pwd)/bin/weft after `make build`")
	}
	if err := lookupSystem(SystemWeft).check(&Options{WeftBin: bin}); err != nil {
		t.Fatalf("WEFT_BIN=%s cannot run the weft row: %v", bin, err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	names := []string{SystemWeft, SystemWeftL2, SystemWeftL2Plain, SystemWeftPolicy}
	profiles := t.TempDir()
	rep, err := Run(ctx, Options{Systems: names, Rounds: 1, Duration: time.Second, Streams: 2, Pings: 10,
		OutDir: "-", WeftBin: bin, Progress: &progress, ProfileDir: profiles})
	t.Logf("progress:\n%s", progress.String())
	checkMedians(t, rep, err, names)
	// --profile: a CPU profile of both agents of every weft row over its single-stream run
	// (startProfiles checked each is gzip, so pprof's format, not an error page).
	for _, name := range names {
		for _, h := range []string{"a", "b"} {
			f := filepath.Join(profiles, name+"-r1-"+h+".pprof")
			if st, err := os.Stat(f); err != nil || st.Size() < 100 {
				t.Errorf("profile %s: %v (size %v)", f, err, st)
			}
		}
	}
	// The agent picked its own MTU for each mode, following the lab's 1500-byte IPv4
	// underlay: the figures are for the MTU a user gets.
	for name, want := range map[string]int{
		SystemWeft:        tunnel.InnerMTU(1500, tunnel.FramingL3, false),
		SystemWeftL2:      tunnel.InnerMTU(1500, tunnel.FramingL2, false),
		SystemWeftL2Plain: tunnel.InnerMTU(1500, tunnel.FramingPlainL2, false),
		SystemWeftPolicy:  tunnel.InnerMTU(1500, tunnel.FramingL3, false),
	} {
		if got := rep.System(name).MTU; got != want {
			t.Errorf("%s ran with MTU %d, want the agent's default %d", name, got, want)
		}
	}
	if len(rep.Files) != 0 {
		t.Errorf(`OutDir "-" wrote %v`, rep.Files)
	}
}

// TestRun_NetnsUnderlayMTU: --underlay-mtu 1500,9001 measures wireguard-go and weft at both
// in one run: a row per system and MTU with throughput, wireguard-go at route MTU − 80 as
// wg-quick sets it, weft at the MTU it chose itself from the underlay (jumbo frames).
func TestRun_NetnsUnderlayMTU(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "iperf3", "ping", "ss")
	bin := os.Getenv("WEFT_BIN")
	if bin == "" {
		netlab.SkipOrFail(t, "WEFT_BIN not set: run `make test-netns`, or WEFT_BIN=$(pwd)/bin/weft after `make build`")
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	names := []string{SystemWireGuardGo, SystemWeft}
	rep, err := Run(ctx, Options{Systems: names, Rounds: 1, Duration: time.Second, Streams: 2, Pings: 10, UnderlayMTUs: []int{1500, 9001},
		OutDir: "-", WeftBin: bin, WireGuardGoBin: testWireGuardGoBin(t), Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if rep != nil {
		var table strings.Builder
		_ = rep.WriteTable(&table)
		t.Logf("table:\n%s", table.String())
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Systems) != 4 {
		t.Fatalf("%d rows, want 4 (2 systems × 2 MTUs)", len(rep.Systems))
	}
	for _, c := range []struct {
		name      string
		under, mt int
	}{
		{SystemWireGuardGo, 1500, 1420}, {SystemWireGuardGo, 9001, 8921},
		{SystemWeft, 1500, tunnel.InnerMTU(1500, tunnel.FramingL3, false)}, {SystemWeft, 9001, tunnel.InnerMTU(9001, tunnel.FramingL3, false)},
	} {
		r := rep.SystemAt(c.name, c.under)
		if r == nil {
			t.Fatalf("no row for %s at %d", c.name, c.under)
		}
		if r.MTU != c.mt {
			t.Errorf("%s at underlay %d ran with MTU %d, want %d", c.name, c.under, r.MTU, c.mt)
		}
		if m := r.Metrics[MetricTCPSingle]; !m.Valid() || m.Median <= 0 {
			t.Errorf("%s at underlay %d: single stream %+v", c.name, c.under, m)
		}
	}
}
