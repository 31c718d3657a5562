package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// startIperf3Server starts `iperf3 -s` in h and waits until it listens.
func (s *session) startIperf3Server(ctx context.Context, h *netlab.Host) error {
	p, err := s.start(h, "iperf3", "-s", "-p", iperf3Port)
	if err != nil {
		return err
	}
	return waitIperf3Port(ctx, h, "iperf3 server on "+h.Name, p.exited)
}

// waitIperf3Port waits until something in h listens on iperf3's TCP port (what: the
// listener, for the error), or abort reports that the process that should listen ended.
func waitIperf3Port(ctx context.Context, h *netlab.Host, what string, abort func() error) error {
	return poll(ctx, 10*time.Second, what, func() error {
		out, err := h.RunContext(ctx, "ss", "-Hltn", "sport", "=", ":"+iperf3Port)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) == "" {
			return fmt.Errorf("not listening yet")
		}
		return nil
	}, abort)
}

// iperf3 runs a TCP test from h to dst with the given number of parallel streams.
func (s *session) iperf3(ctx context.Context, h *netlab.Host, dst string, streams int) (iperf3Result, error) {
	secs := s.opts.durationSeconds()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+20*time.Second)
	defer cancel()
	args := []string{"-c", dst, "-p", iperf3Port, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams),
		"-J", "--connect-timeout", "3000"}
	var stdout, stderr bytes.Buffer
	cmd := h.Command(ctx, "iperf3", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s.log.Debug("run", "host", h.Name, "cmd", "iperf3 "+strings.Join(args, " "))
	runErr := cmd.Run()
	res, err := parseIperf3(stdout.Bytes())
	if err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("iperf3 to %s: %w", dst, ctx.Err())
		}
		if runErr != nil && stdout.Len() == 0 {
			return res, fmt.Errorf("%w: %v: %s", ErrIperf3, runErr, tail(strings.TrimSpace(stderr.String()), 300))
		}
		return res, err
	}
	return res, nil
}

// ping measures round-trip times from h to dst: Options.Pings requests, 10 ms apart.
func (s *session) ping(ctx context.Context, h *netlab.Host, dst string) (pingResult, error) {
	deadline := int(time.Duration(s.opts.Pings)*pingInterval/time.Second) + 5
	ctx, cancel := context.WithTimeout(ctx, time.Duration(deadline+5)*time.Second)
	defer cancel()
	interval := strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64)
	// Not -q: the per-reply lines give the percentiles.
	args := []string{"-n", "-c", strconv.Itoa(s.opts.Pings), "-i", interval, "-W", "1", "-w", strconv.Itoa(deadline), dst}
	// Not s.run: its one-minute cap would kill a run of more than ~5500 pings.
	s.log.Debug("run", "host", h.Name, "cmd", "ping "+strings.Join(args, " "))
	out, runErr := h.RunContext(ctx, "ping", args...)
	res, err := parsePing(out)
	if err != nil {
		if runErr != nil {
			return res, fmt.Errorf("%w (%v)", err, runErr)
		}
		return res, err
	}
	return res, nil
}
