package bench

// Run's flow: check the machine and the systems, then for each round measure every system in
// turn (the starting system rotates each round, so neither drift nor order favours one), each
// in a fresh lab: bring the overlay up, wait until host b answers ping through it, start the
// iperf3 server in b, then from a: ping, iperf3 with one stream, iperf3 with Streams streams;
// tear the lab down. A failed step is recorded in the report and the run goes on.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// Errors of Run, for errors.Is.
var (
	// ErrUnavailable: the machine cannot run the benchmark (not root, a tool missing).
	ErrUnavailable = errors.New("benchmark cannot run here")
	// ErrIncomplete: the report is written but some steps failed (listed in its Errors).
	ErrIncomplete = errors.New("benchmark incomplete")
)

// sampleMTU keys the overlay MTU measured each round among a system's samples (it is
// reported as SystemResult.MTU, not as a metric).
const sampleMTU = "mtu"

// reachTimeout bounds the wait for the overlay to carry a first ping (handshakes included).
const reachTimeout = 20 * time.Second

// Run measures the systems of opts between two network namespaces and returns the report.
// It needs root, iproute2, ping and iperf3. It writes report.json, table.txt, chart.svg and
// chart.png into opts.OutDir (unless "-") and returns the report even when some steps failed,
// together with an error wrapping ErrIncomplete; when ctx ends it returns what it has so far.
func Run(ctx context.Context, opts Options) (*Report, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	if o.ProfileDir != "" {
		if _, err := exec.LookPath("curl"); err != nil {
			return nil, fmt.Errorf("%w: --profile fetches the agents' profiles with curl, which is not found: apt-get install curl", ErrUnavailable)
		}
	}
	chosen, skipped, err := selectSystems(&o)
	if err != nil {
		return nil, err
	}
	rep := &Report{
		Started:         time.Now().UTC(),
		Host:            hostInfo(),
		Rounds:          o.Rounds,
		DurationSeconds: float64(o.durationSeconds()),
		Streams:         o.Streams,
		Pings:           o.Pings,
		Skipped:         skipped,
	}
	for _, sk := range skipped {
		progressf(&o, "skipping %s: %s", sk.System, sk.Reason)
	}
	names := make([]string, len(chosen))
	for i, sys := range chosen {
		names[i] = sys.name
	}
	rep.UnderlayMTUs = o.UnderlayMTUs
	progressf(&o, "weft bench: %s; underlay MTU %s; %d round(s) of ping ×%d, iperf3 %d s with 1 and %d streams",
		strings.Join(names, ", "), joinInts(o.UnderlayMTUs), o.Rounds, o.Pings, o.durationSeconds(), o.Streams)
	// Every system at every underlay MTU: the MTUs outermost, so a table reads by MTU.
	type entry struct {
		sys *system
		mtu int
	}
	var entries []entry
	for _, m := range o.UnderlayMTUs {
		for _, sys := range chosen {
			entries = append(entries, entry{sys, m})
		}
	}
	multi := len(o.UnderlayMTUs) > 1
	samples := make([]map[string][]float64, len(entries))
	errs := make([][]string, len(entries))
	for i := range samples {
		samples[i] = map[string][]float64{}
	}
	var failures int
rounds:
	for r := 0; r < o.Rounds; r++ {
		for k := range entries {
			if ctx.Err() != nil {
				break rounds
			}
			i := (k + r) % len(entries)
			tag := fmt.Sprintf("[round %d/%d] %s", r+1, o.Rounds, entries[i].sys.name)
			if multi {
				tag += fmt.Sprintf(" @%d", entries[i].mtu)
			}
			for _, e := range measure(ctx, &o, entries[i].sys, entries[i].mtu, tag, samples[i]) {
				failures++
				errs[i] = append(errs[i], fmt.Sprintf("round %d: %v", r+1, e))
			}
		}
	}
	for i, en := range entries {
		res := SystemResult{Name: en.sys.name, Description: en.sys.desc, UnderlayMTU: en.mtu, Metrics: map[string]Summary{}, Errors: errs[i]}
		for _, key := range metricOrder {
			res.Metrics[key] = summarize(samples[i][key])
		}
		if m := samples[i][sampleMTU]; len(m) > 0 {
			res.MTU = int(m[len(m)-1])
		}
		rep.Systems = append(rep.Systems, res)
	}
	rep.computeRatios()
	rep.Finished = time.Now().UTC()
	var errsOut []error
	if o.OutDir != "-" {
		if err := rep.Save(o.OutDir); err != nil {
			errsOut = append(errsOut, err)
		} else {
			progressf(&o, "wrote %s", strings.Join(rep.Files, ", "))
		}
	}
	if ctx.Err() != nil {
		errsOut = append(errsOut, fmt.Errorf("%w: interrupted: %w", ErrIncomplete, ctx.Err()))
	} else if failures > 0 {
		errsOut = append(errsOut, fmt.Errorf("%w: %d step(s) failed (see the errors under the table)", ErrIncomplete, failures))
	}
	return rep, errors.Join(errsOut...)
}

// measure runs one system's turn in a fresh lab and appends its samples; it returns the
// errors of the steps that failed.
func measure(ctx context.Context, o *Options, sys *system, underlayMTU int, tag string, samples map[string][]float64) (errs []error) {
	start := time.Now()
	s, err := newSession(o, sys.name, underlayMTU)
	if err != nil {
		progressf(o, "%s: lab … failed: %v", tag, err)
		return []error{fmt.Errorf("lab: %w", err)}
	}
	defer func() {
		if err := s.close(); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %w", err))
		}
	}()
	// Measurements stop as soon as a daemon of the session dies.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.dead:
			cancel()
		case <-ctx.Done():
		}
	}()
	// A daemon that died explains a failed step better than the tool's own error.
	withDaemon := func(err error) error {
		if derr := s.exitedProcess(); derr != nil {
			return fmt.Errorf("%w (then: %v)", derr, err)
		}
		return err
	}
	target, err := sys.up(ctx, s)
	if err == nil && !sys.tcpOnly {
		err = s.waitReachable(ctx, s.a, target, reachTimeout)
	}
	if err == nil {
		err = s.startIperf3Server(ctx, s.b)
	}
	if err != nil {
		err = withDaemon(err)
		progressf(o, "%s: setup … failed: %v", tag, err)
		return []error{fmt.Errorf("setup: %w", err)}
	}
	progressf(o, "%s: setup … ok (%.1f s)", tag, time.Since(start).Seconds())
	if sys.ifname != "" {
		if mtu, err := s.linkMTU(ctx, s.a, sys.ifname); err != nil {
			errs = append(errs, fmt.Errorf("mtu: %w", err))
		} else {
			samples[sampleMTU] = append(samples[sampleMTU], float64(mtu))
		}
	}

	if sys.tcpOnly {
		// no ping: see system.tcpOnly
	} else if p, err := s.ping(ctx, s.a, target); err != nil {
		err = withDaemon(err)
		progressf(o, "%s: ping … failed: %v", tag, err)
		errs = append(errs, fmt.Errorf("ping: %w", err))
	} else {
		samples[MetricPingRTT] = append(samples[MetricPingRTT], p.Avg)
		if p.P99 > 0 {
			samples[MetricPingP99] = append(samples[MetricPingP99], p.P99)
		}
		progressf(o, "%s: ping … avg %.3f ms, p99 %.3f (min %.3f, max %.3f, %d/%d replies)", tag, p.Avg, p.P99, p.Min, p.Max, p.Received, p.Sent)
	}
	for _, t := range []struct {
		key     string
		streams int
	}{{MetricTCPSingle, 1}, {MetricTCPMulti, o.Streams}} {
		label := fmt.Sprintf("iperf3 %d streams", t.streams)
		if t.streams == 1 {
			label = "iperf3 1 stream"
		}
		if ctx.Err() != nil {
			return append(errs, withDaemon(ctx.Err()))
		}
		cpu0, cpuOK, cpuErr := s.systemCPU()
		var profiles func() []error
		if t.streams == 1 && o.ProfileDir != "" && sys.weft {
			profiles = s.startProfiles(ctx, o.ProfileDir, profileName(tag), o.durationSeconds())
		}
		res, err := s.iperf3(ctx, s.a, target, t.streams)
		if profiles != nil {
			for _, perr := range profiles() {
				errs = append(errs, fmt.Errorf("profile: %w", perr))
			}
		}
		if err == nil && cpuOK && t.streams == 1 {
			cpu1, _, err1 := s.systemCPU()
			if err1 = errors.Join(cpuErr, err1); err1 != nil {
				errs = append(errs, fmt.Errorf("cpu: %w", err1))
			} else if res.Bytes > 0 {
				perGB := (cpu1 - cpu0) / (res.Bytes / 1e9)
				samples[MetricCPUPerGB] = append(samples[MetricCPUPerGB], perGB)
				progressf(o, "%s: cpu … %.2f s per GB (%.2f s for %.2f GB)", tag, perGB, cpu1-cpu0, res.Bytes/1e9)
			}
		}
		if err != nil {
			err = withDaemon(err)
			progressf(o, "%s: %s … failed: %v", tag, label, err)
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		gbps := res.BitsPerSecond / 1e9
		samples[t.key] = append(samples[t.key], gbps)
		progressf(o, "%s: %s … %.2f Gbit/s (%d retransmits)", tag, label, gbps, res.Retransmits)
	}
	return errs
}

// preflight checks root, iproute2, ping and iperf3 with a message that says what to do.
func preflight() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: weft bench needs root (it creates network namespaces, veth pairs and TUN devices); run it with sudo", ErrUnavailable)
	}
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, tool := range []struct{ cmd, pkg string }{{"iperf3", "iperf3"}, {"ping", "iputils-ping"}, {"ss", "iproute2"}} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			return fmt.Errorf("%w: %s not found: apt-get install %s", ErrUnavailable, tool.cmd, tool.pkg)
		}
	}
	return nil
}

// selectSystems resolves Options.Systems: named systems must pass their check; the default
// set takes every non-placeholder system that passes and lists the others as skipped.
func selectSystems(o *Options) (chosen []*system, skipped []Skipped, err error) {
	if len(o.Systems) > 0 {
		for _, name := range o.Systems {
			sys := lookupSystem(name)
			if sys.check != nil {
				if err := sys.check(o); err != nil {
					return nil, nil, fmt.Errorf("%w: system %s: %v", ErrUnavailable, name, err)
				}
			}
			chosen = append(chosen, sys)
		}
		return chosen, nil, nil
	}
	for _, sys := range systems {
		if sys.placeholder {
			continue
		}
		if sys.check != nil {
			if err := sys.check(o); err != nil {
				skipped = append(skipped, Skipped{System: sys.name, Reason: err.Error()})
				continue
			}
		}
		chosen = append(chosen, sys)
	}
	return chosen, skipped, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func progressf(o *Options, format string, args ...any) {
	fmt.Fprintf(o.Progress, format+"\n", args...)
}

func hostInfo() HostInfo {
	h := HostInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			h.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return h
}
