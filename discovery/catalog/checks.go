package catalog

// Health checks of local services. Each checked service has one goroutine (checkRunner.run):
// tcp, http and exec checks probe once at start and then every Interval, each probe bounded
// by Timeout; a ttl check waits on a timer that Catalog.Renew resets. Every result goes to
// the catalog (Catalog.observe), which feeds it to the service's checkMachine under its
// lock; a state change bumps the catalog index and re-publishes the tag.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/weftnet/weft/internal/headbuf"
)

// maxCheckOutput bounds the output kept from one probe.
const maxCheckOutput = 512

// checkMachine turns a stream of probe results into a debounced health state; see
// CheckDef for the rules. It is not safe for concurrent use (the catalog's lock guards it).
type checkMachine struct {
	health     Health
	passes     int // consecutive passing results
	fails      int // consecutive non-passing results
	needPasses int
	needFails  int
}

// newCheckMachine returns the machine of a new check: critical until proven passing.
func newCheckMachine(def *CheckDef) checkMachine {
	m := checkMachine{health: HealthCritical, needPasses: def.PassesBeforePassing, needFails: def.FailuresBeforeCritical}
	if def.Kind == CheckTTL {
		m.needPasses, m.needFails = 1, 1
	}
	m.needPasses = max(m.needPasses, 1)
	m.needFails = max(m.needFails, 1)
	return m
}

// observe applies one result and reports whether the state changed.
func (m *checkMachine) observe(r Health) bool {
	old := m.health
	if r == HealthPassing {
		m.fails = 0
		m.passes++
		if m.passes >= m.needPasses {
			m.health = HealthPassing
		}
	} else {
		m.passes = 0
		m.fails++
		if m.health != HealthPassing || m.fails >= m.needFails {
			m.health = r
		}
	}
	return m.health != old
}

// prober runs one probe and returns its result and a short human-readable output.
type prober func(ctx context.Context) (Health, string)

// checkRunner drives one check of one local service.
type checkRunner struct {
	def     CheckDef
	probe   prober
	report  func(r *checkRunner, h Health, output string)
	renewCh chan struct{} // ttl: a renewal happened, restart the timer
	cancel  context.CancelFunc
	done    chan struct{}
	closeFn func() // releases probe resources (http idle connections)
}

func newCheckRunner(def CheckDef, report func(*checkRunner, Health, string)) *checkRunner {
	r := &checkRunner{def: def, report: report, renewCh: make(chan struct{}, 1), done: make(chan struct{})}
	r.probe, r.closeFn = newProber(&r.def)
	return r
}

// start launches the goroutine; stop ends it and waits.
func (r *checkRunner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
}

func (r *checkRunner) stop() {
	r.cancel()
	<-r.done
	if r.closeFn != nil {
		r.closeFn()
	}
}

// renewed restarts a ttl check's timer; it never blocks.
func (r *checkRunner) renewed() {
	select {
	case r.renewCh <- struct{}{}:
	default:
	}
}

func (r *checkRunner) run(ctx context.Context) {
	defer close(r.done)
	if r.def.Kind == CheckTTL {
		t := time.NewTimer(r.def.TTL)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.renewCh:
				t.Reset(r.def.TTL)
			case <-t.C:
				r.report(r, HealthCritical, fmt.Sprintf("ttl %v expired without a renewal", r.def.TTL))
			}
		}
	}
	tick := time.NewTicker(r.def.Interval)
	defer tick.Stop()
	for {
		r.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// step runs one probe and reports it, unless the runner is stopping.
func (r *checkRunner) step(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, r.def.Timeout)
	h, out := r.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if len(out) > maxCheckOutput {
		out = out[:maxCheckOutput]
	}
	r.report(r, h, out)
}

func newProber(def *CheckDef) (prober, func()) {
	switch def.Kind {
	case CheckTCP:
		return tcpProber(def.Target), nil
	case CheckHTTP:
		// No keep-alive: a probe every few seconds gains nothing from an idle connection,
		// and an idle connection is a goroutine outliving the check.
		tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
		client := &http.Client{Transport: tr}
		return httpProber(client, def.Target), tr.CloseIdleConnections
	case CheckExec:
		return execProber(def.argv()), nil
	}
	return func(context.Context) (Health, string) { return HealthCritical, "no prober" }, nil
}

func tcpProber(target string) prober {
	return func(ctx context.Context) (Health, string) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return HealthCritical, "tcp " + target + ": " + err.Error()
		}
		c.Close()
		return HealthPassing, "tcp " + target + ": connected"
	}
}

func httpProber(client *http.Client, url string) prober {
	return func(ctx context.Context) (Health, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return HealthCritical, err.Error()
		}
		req.Header.Set("User-Agent", "weft-health-check")
		resp, err := client.Do(req)
		if err != nil {
			return HealthCritical, "GET " + url + ": " + err.Error()
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		out := "GET " + url + ": " + resp.Status
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return HealthPassing, out
		case resp.StatusCode == http.StatusTooManyRequests:
			return HealthWarning, out
		}
		return HealthCritical, out
	}
}

func execProber(argv []string) prober {
	return func(ctx context.Context) (Health, string) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		// A child that keeps our pipe open must not hold the check past its timeout.
		cmd.WaitDelay = time.Second
		out := newCheckOutput()
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		o := out.String()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			return HealthCritical, fmt.Sprintf("exec timed out: %s", o)
		case err == nil:
			return HealthPassing, o
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			return HealthWarning, o
		case errors.As(err, &ee):
			return HealthCritical, fmt.Sprintf("exit %d: %s", ee.ExitCode(), o)
		}
		return HealthCritical, "exec: " + err.Error()
	}
}

// newCheckOutput keeps the first maxCheckOutput bytes of a check's output.
func newCheckOutput() *headbuf.Buffer { return headbuf.New(maxCheckOutput) }
