package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Options configures Run. The zero value of every field means its default.
type Options struct {
	// Systems are the names to measure, in this order (see SystemNames). Empty: every system
	// of the default set that can run here (the others are listed in Report.Skipped).
	Systems []string
	// Rounds is how many times each system is measured; the systems alternate within a round
	// so that drift of the machine affects all of them. Default 3.
	Rounds int
	// Duration is the length of each iperf3 run, rounded up to whole seconds. Default 5s.
	Duration time.Duration
	// Streams is the number of parallel TCP streams of the multi-stream test. Default 4.
	Streams int
	// Pings is the number of echo requests per latency measurement, sent every 10 ms. Default 50.
	Pings int
	// UnderlayMTUs are the MTUs of the lab's veth link (both ends); every system is measured
	// at each, in this order. Default: 1500 only.
	UnderlayMTUs []int
	// OutDir receives report.json, table.txt, chart.svg and chart.png. Default
	// ./bench-results/YYYYMMDD-HHMMSS (UTC); "-" writes no files.
	OutDir string
	// WeftBin is the weft binary whose `weft agent` runs inside the namespaces for the weft
	// rows. Default: DefaultWeftBin.
	WeftBin string
	// WireGuardGoBin is the binary whose hidden `__wireguard-go` command (WireGuardGoMain) runs
	// the wireguard-go row: weft-bench itself, so the daemon needs no benchmark code.
	// Default: the running executable (os.Executable).
	WireGuardGoBin string
	// ProfileDir, when set, receives a CPU profile of each weft agent (both hosts) over
	// every single-stream iperf3 run, taken from the agent's pprof listener (the bench
	// runs every agent with debug.pprof_listen on its namespace's loopback):
	// SYSTEM-rROUND-HOST.pprof, to read with `go tool pprof -top bin/weft FILE`. Needs curl.
	ProfileDir string
	// Progress receives one line per step while Run works. Default: discarded.
	Progress io.Writer
	// Logger receives debug detail (commands, process output on failure). Default: discarded.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultRounds   = 3
	DefaultDuration = 5 * time.Second // long enough for TCP to leave slow start, short enough for 3 rounds of 5 systems in ~3 min
	DefaultStreams  = 4
	DefaultPings    = 50
	// DefaultUnderlayMTU is an Ethernet link's; MinUnderlayMTU IPv6's minimum link MTU (the
	// overlays need room above their overhead), MaxUnderlayMTU a veth's largest.
	DefaultUnderlayMTU = 1500
	MinUnderlayMTU     = 1280
	MaxUnderlayMTU     = 65535
	pingInterval       = 10 * time.Millisecond // 50 requests in half a second, far from a flood; below 200 ms older iputils needs root (Run has it)
)

// ErrOptions is wrapped by every invalid option.
var ErrOptions = errors.New("invalid bench options")

// withDefaults returns a copy of o with every zero field set to its default.
func (o Options) withDefaults() (Options, error) {
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Streams == 0 {
		o.Streams = DefaultStreams
	}
	if o.Pings == 0 {
		o.Pings = DefaultPings
	}
	if len(o.UnderlayMTUs) == 0 {
		o.UnderlayMTUs = []int{DefaultUnderlayMTU}
	}
	for i, m := range o.UnderlayMTUs {
		if m < MinUnderlayMTU || m > MaxUnderlayMTU {
			return o, fmt.Errorf("%w: underlay MTU %d outside [%d, %d] (1280 is IPv6's minimum link, 65535 a veth's maximum)", ErrOptions, m, MinUnderlayMTU, MaxUnderlayMTU)
		}
		if slices.Contains(o.UnderlayMTUs[:i], m) {
			return o, fmt.Errorf("%w: underlay MTU %d is listed twice", ErrOptions, m)
		}
	}
	if o.Rounds < 0 || o.Duration < 0 || o.Streams < 0 || o.Pings < 0 {
		return o, fmt.Errorf("%w: rounds, duration, streams and pings must be positive", ErrOptions)
	}
	if o.Streams > 128 {
		return o, fmt.Errorf("%w: at most 128 streams (iperf3's limit)", ErrOptions)
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bench-results", time.Now().UTC().Format("20060102-150405"))
	}
	if o.WeftBin == "" || o.WireGuardGoBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("finding the running executable: %w (set the weft binary path explicitly with --weft-bin)", err)
		}
		if o.WeftBin == "" {
			o.WeftBin = DefaultWeftBin(exe)
		}
		if o.WireGuardGoBin == "" {
			o.WireGuardGoBin = exe
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for i, name := range o.Systems {
		if lookupSystem(name) == nil {
			return o, fmt.Errorf("%w: unknown system %q (known: %s)", ErrOptions, name, strings.Join(SystemNames(), ", "))
		}
		if slices.Contains(o.Systems[:i], name) {
			return o, fmt.Errorf("%w: system %q is listed twice", ErrOptions, name)
		}
	}
	return o, nil
}

// DefaultWeftBin is the weft binary the benchmark runs when none is given: `weft` in the
// directory of exe (the running weft-bench, as `make build` puts both into bin/), else
// `weft` on PATH, else the path next to exe, which the weft row's check then reports as
// missing with how to build it.
func DefaultWeftBin(exe string) string {
	next := filepath.Join(filepath.Dir(exe), "weft")
	if st, err := os.Stat(next); err == nil && !st.IsDir() {
		return next
	}
	if p, err := exec.LookPath("weft"); err == nil {
		return p
	}
	return next
}

// durationSeconds is Duration rounded up to whole seconds, at least 1 (iperf3 -t takes an integer).
func (o Options) durationSeconds() int {
	s := int((o.Duration + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Flags registers the flags of `weft-bench` (and `weft bench`) on fs and returns the Options they fill. Progress
// and Logger are left for the caller to set (e.g. os.Stderr and the CLI's logger).
func Flags(fs *pflag.FlagSet) *Options {
	o := &Options{}
	fs.StringSliceVar(&o.Systems, "systems", nil,
		"systems to measure, comma-separated, in order ("+strings.Join(SystemNames(), ", ")+"); default: all that can run here")
	fs.IntVar(&o.Rounds, "rounds", DefaultRounds, "rounds; systems alternate within each round")
	fs.DurationVar(&o.Duration, "duration", DefaultDuration, "length of each iperf3 run (whole seconds)")
	fs.IntVar(&o.Streams, "streams", DefaultStreams, "parallel TCP streams of the multi-stream test")
	fs.IntVar(&o.Pings, "pings", DefaultPings, "echo requests per latency measurement (10 ms apart)")
	fs.IntSliceVar(&o.UnderlayMTUs, "underlay-mtu", []int{DefaultUnderlayMTU},
		"MTU of the lab's underlay link, comma-separated to measure every system at each (e.g. 1500,9001 for jumbo frames); wireguard-go gets route MTU − 80 as wg-quick sets it, the kernel vxlan − 50, weft follows the underlay by itself")
	fs.StringVar(&o.OutDir, "out", "", `output directory for report.json, table.txt, chart.svg, chart.png (default ./bench-results/DATE-TIME; "-" for none)`)
	fs.StringVar(&o.WeftBin, "weft-bin", "", "weft binary whose agent command runs in the namespaces (default: weft next to this executable, else on PATH)")
	fs.StringVar(&o.ProfileDir, "profile", "", "directory for CPU profiles of the weft agents over each single-stream run (SYSTEM-rROUND-HOST.pprof; read with go tool pprof -top bin/weft FILE; needs curl)")
	return o
}
