package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func TestParseIperf3(t *testing.T) {
	real2, err := os.ReadFile("testdata/iperf3-2streams.json")
	if err != nil {
		t.Fatal(err)
	}
	refused, err := os.ReadFile("testdata/iperf3-refused.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		wantBPS float64
		wantRtx int64
		wantErr string
	}{
		{name: "iperf 3.12, 2 streams", in: string(real2), wantBPS: 12580703829.835695, wantRtx: 4},
		{name: "minimal", in: `{"end":{"sum_sent":{"bits_per_second":2e9,"retransmits":7},"sum_received":{"bits_per_second":1.9e9}}}`, wantBPS: 1.9e9, wantRtx: 7},
		{name: "refused", in: string(refused), wantErr: "unable to connect to server: Connection refused"},
		{name: "nothing received", in: `{"end":{"sum_received":{"bits_per_second":0}}}`, wantErr: "no data received"},
		{name: "not JSON", in: "iperf3: error - unable to connect", wantErr: "parsing JSON"},
		{name: "empty", in: "", wantErr: "parsing JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf3([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrIperf3) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrIperf3 containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.BitsPerSecond != tt.wantBPS || got.Retransmits != tt.wantRtx {
				t.Fatalf("got %+v, want %v bit/s, %d retransmits", got, tt.wantBPS, tt.wantRtx)
			}
		})
	}
}

const iputilsOutput = `PING 10.231.0.2 (10.231.0.2) 56(84) bytes of data.

--- 10.231.0.2 ping statistics ---
50 packets transmitted, 50 received, 0% packet loss, time 539ms
rtt min/avg/max/mdev = 0.024/0.050/0.107/0.015 ms
`

func TestParsePing(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    pingResult
		wantErr string
	}{
		{name: "iputils", in: iputilsOutput, want: pingResult{Sent: 50, Received: 50, Min: 0.024, Avg: 0.050, Max: 0.107, Mdev: 0.015}},
		{name: "iputils partial loss", in: "--- x ping statistics ---\n10 packets transmitted, 7 received, +3 errors, 30% packet loss, time 9ms\nrtt min/avg/max/mdev = 1.5/2.25/3.125/0.5 ms\n",
			want: pingResult{Sent: 10, Received: 7, Min: 1.5, Avg: 2.25, Max: 3.125, Mdev: 0.5}},
		{name: "busybox", in: "--- 10.0.0.2 ping statistics ---\n3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max = 0.061/0.080/0.101 ms\n",
			want: pingResult{Sent: 3, Received: 3, Min: 0.061, Avg: 0.080, Max: 0.101}},
		{name: "all lost", in: "--- x ping statistics ---\n5 packets transmitted, 0 received, 100% packet loss, time 4093ms\n", wantErr: "0 of 5"},
		{name: "no summary", in: "ping: connect: Network is unreachable\n", wantErr: "no summary"},
		{name: "no rtt", in: "2 packets transmitted, 2 received, 0% packet loss\n", wantErr: "no rtt"},
		{name: "per-reply times give p99", in: pingRepliesOutput(),
			want: pingResult{Sent: 100, Received: 100, Min: 0.01, Avg: 0.505, Max: 1, Mdev: 0.3, P99: 0.99}},
		{name: "busybox replies", in: "PING 10.0.0.2 (10.0.0.2): 56 data bytes\n64 bytes from 10.0.0.2: seq=0 ttl=64 time=0.061 ms\n64 bytes from 10.0.0.2: seq=1 ttl=64 time=0.101 ms\n\n--- 10.0.0.2 ping statistics ---\n2 packets transmitted, 2 packets received, 0% packet loss\nround-trip min/avg/max = 0.061/0.081/0.101 ms\n",
			want: pingResult{Sent: 2, Received: 2, Min: 0.061, Avg: 0.081, Max: 0.101, P99: 0.101}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePing(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrPing) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrPing containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name             string
		in               []float64
		median, min, max float64
		valid            bool
	}{
		{name: "empty"},
		{name: "one", in: []float64{2.5}, median: 2.5, min: 2.5, max: 2.5, valid: true},
		{name: "odd", in: []float64{3, 1, 2}, median: 2, min: 1, max: 3, valid: true},
		{name: "even", in: []float64{4, 1, 3, 2}, median: 2.5, min: 1, max: 4, valid: true},
		{name: "equal", in: []float64{7, 7}, median: 7, min: 7, max: 7, valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			s := summarize(in)
			if s.Valid() != tt.valid || s.Median != tt.median || s.Min != tt.min || s.Max != tt.max {
				t.Fatalf("summarize(%v) = %+v", tt.in, s)
			}
			if math.IsNaN(s.Median) {
				t.Fatal("NaN median cannot be written as JSON")
			}
			for i := range in {
				if in[i] != tt.in[i] || s.Samples[i] != tt.in[i] {
					t.Fatalf("samples reordered: input %v, samples %v", in, s.Samples)
				}
			}
		})
	}
}

func FuzzParsePing(f *testing.F) {
	f.Add(iputilsOutput)
	f.Add("3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max = 0.061/0.080/0.101 ms\n")
	f.Add("1 packets transmitted, 1 received\nrtt min/avg/max/mdev = 1.2.3/4/5/6 ms")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parsePing(s)
		if err == nil && r.Received == 0 {
			t.Fatalf("accepted a run without replies: %+v", r)
		}
	})
}

func FuzzParseIperf3(f *testing.F) {
	if b, err := os.ReadFile("testdata/iperf3-2streams.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"error":"x"}`))
	f.Add([]byte(`{"end":{"sum_received":{"bits_per_second":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseIperf3(b)
		if err == nil && !(r.BitsPerSecond > 0) {
			t.Fatalf("accepted a non-positive throughput: %+v", r)
		}
	})
}

func TestParseLinkMTU(t *testing.T) {
	out := "7: wg0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1420 qdisc fq_codel state UNKNOWN mode DEFAULT group default qlen 500\\    link/none \n"
	if got, err := parseLinkMTU(out); err != nil || got != 1420 {
		t.Errorf("parseLinkMTU = %d, %v; want 1420", got, err)
	}
	for _, bad := range []string{"", "7: wg0: <UP> qdisc noop", "7: wg0: <UP> mtu", "7: wg0: <UP> mtu lots"} {
		if got, err := parseLinkMTU(bad); err == nil {
			t.Errorf("parseLinkMTU(%q) = %d, want an error", bad, got)
		}
	}
}

// pingRepliesOutput is iputils' output for 100 replies of 0.01, 0.02, … 1.00 ms, out of order.
func pingRepliesOutput() string {
	var b strings.Builder
	b.WriteString("PING 10.231.0.2 (10.231.0.2) 56(84) bytes of data.\n")
	for i := range 100 {
		ms := float64((i*37)%100+1) / 100
		fmt.Fprintf(&b, "64 bytes from 10.231.0.2: icmp_seq=%d ttl=64 time=%g ms\n", i+1, ms)
	}
	b.WriteString("\n--- 10.231.0.2 ping statistics ---\n100 packets transmitted, 100 received, 0% packet loss, time 990ms\n")
	b.WriteString("rtt min/avg/max/mdev = 0.01/0.505/1/0.3 ms\n")
	return b.String()
}

func TestPercentile(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		p    float64
		want float64
	}{
		{nil, 99, 0},
		{[]float64{3}, 99, 3},
		{[]float64{5, 1, 4, 2, 3}, 50, 3},
		{[]float64{5, 1, 4, 2, 3}, 99, 5},
		{[]float64{5, 1, 4, 2, 3}, 20, 1},
	} {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis; utime 250, stime 50 ticks.
	stat := "1234 (weft (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500 18446744073709551615"
	got, err := parseProcStatCPU(stat)
	if err != nil || got != 3.0 {
		t.Fatalf("parseProcStatCPU = %v, %v; want 3 s", got, err)
	}
	for _, bad := range []string{"", "1234 (weft", "1234 (weft) S 1 2", "1 (w) S 1 1 1 0 -1 0 0 0 0 0 x 50"} {
		if _, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q): no error", bad)
		}
	}
	// Our own process: a real stat parses.
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err) // Linux always has it: the bench reads CPU time there
	}
	if _, err := parseProcStatCPU(string(b)); err != nil {
		t.Fatal(err)
	}
}
