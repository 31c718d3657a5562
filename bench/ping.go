package bench

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
)

// ErrPing is wrapped by failures to read ping's summary or to get any reply.
var ErrPing = errors.New("ping")

// pingResult is the summary of one `ping -c N` run; times in milliseconds.
type pingResult struct {
	Sent, Received int
	Min, Avg, Max  float64
	Mdev           float64
	// P99 is the 99th percentile (nearest rank) of the replies' times, from ping's
	// per-reply lines; 0 when it printed none (-q).
	P99 float64
}

var (
	// iputils: "50 packets transmitted, 50 received, 0% packet loss, time 539ms";
	// busybox: "50 packets transmitted, 50 packets received, 0% packet loss".
	pingCountRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)
	// iputils: "rtt min/avg/max/mdev = 0.024/0.050/0.107/0.015 ms";
	// busybox: "round-trip min/avg/max = 0.024/0.050/0.107 ms".
	pingRTTRE = regexp.MustCompile(`min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)(?:/([\d.]+))? ms`)
	// one reply: "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.050 ms" (both)
	pingReplyRE = regexp.MustCompile(`(?m)^\d+ bytes from .* time=([\d.]+) ms`)
)

// parsePing reads the summary that ping prints at its end. It fails when no reply arrived.
func parsePing(out string) (pingResult, error) {
	var r pingResult
	m := pingCountRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%w: no summary line in output %q", ErrPing, tail(out, 200))
	}
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	if r.Received == 0 {
		return r, fmt.Errorf("%w: 0 of %d replies received", ErrPing, r.Sent)
	}
	m = pingRTTRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%w: no rtt line in output %q", ErrPing, tail(out, 200))
	}
	vals := []*float64{&r.Min, &r.Avg, &r.Max, &r.Mdev}
	for i, p := range vals {
		if m[i+1] == "" {
			continue // busybox has no mdev
		}
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return r, fmt.Errorf("%w: rtt value %q: %v", ErrPing, m[i+1], err)
		}
		*p = v
	}
	var times []float64
	for _, m := range pingReplyRE.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			times = append(times, v)
		}
	}
	r.P99 = percentile(times, 99)
	return r, nil
}

// percentile returns the p-th percentile of v by nearest rank (the smallest value with at
// least p % of the values at or below it), 0 for no values.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// tail returns at most the last n bytes of s, for error messages.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
