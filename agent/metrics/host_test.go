package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/config"
)

func freeLoopback(t *testing.T) string {
	t.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	return addr
}

// getWithHost sends GET path to addr naming host in the Host header, as a browser does
// after DNS rebinding (the page's own name, resolved to 127.0.0.1).
func getWithHost(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hostCases: the names a local client uses pass; a web page's own name (DNS rebinding)
// does not.
func hostCases(addr string) map[string]bool {
	_, port, _ := net.SplitHostPort(addr)
	return map[string]bool{
		addr:                       true, // the listen address itself
		"127.0.0.1:" + port:        true,
		"[::1]:" + port:            true,
		"localhost:" + port:        true,
		"LOCALHOST.:" + port:       true,
		"localhost":                true,
		"10.42.1.1:" + port:        true, // an address: no page can be served from it by name
		"evil.example":             false,
		"evil.example:" + port:     false,
		"localhost.evil.example":   false,
		"127.0.0.1.nip.io:" + port: false,
	}
}

// TestServePprof_RefusesForeignHost: a browser on the host led by DNS rebinding reads
// /debug/pprof/cmdline (the agent's command line) unless the listener checks the Host.
func TestServePprof_RefusesForeignHost(t *testing.T) {
	addr := freeLoopback(t)
	var refused HTTPRefusals
	stop, err := ServePprof(config.DebugConfig{PprofListen: addr}, slog.New(slog.DiscardHandler), &refused)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	want := uint64(0)
	for host, ok := range hostCases(addr) {
		if !ok {
			want++
		}
		code, body := getWithHost(t, addr, host, "/debug/pprof/cmdline")
		if ok && code != http.StatusOK {
			t.Errorf("pprof with Host %q: %d %q, want 200", host, code, body)
		}
		if !ok && (code != http.StatusForbidden || strings.Contains(body, "pprof.test")) {
			t.Errorf("pprof with Host %q: %d %.100q, want 403", host, code, body)
		}
		if !ok && !strings.Contains(body, "localhost") {
			t.Errorf("pprof refusal for Host %q does not say what to use: %q", host, body)
		}
	}
	if got := refused.Snapshot()[HTTPRefusal{"pprof", "host"}]; got != want {
		t.Errorf("pprof refusals counted: %d, want %d (%v)", got, want, refused.Snapshot())
	}
}

// TestServe_RefusesForeignHost: the same for /metrics.
func TestServe_RefusesForeignHost(t *testing.T) {
	addr := freeLoopback(t)
	var refused HTTPRefusals
	stop, err := Serve(addr, slog.New(slog.DiscardHandler), &refused, NewCollector(Source{HTTPRefused: refused.Snapshot}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	want := 0
	for host, ok := range hostCases(addr) {
		if !ok {
			want++
		}
		code, body := getWithHost(t, addr, host, "/metrics")
		if ok && (code != http.StatusOK || !strings.Contains(body, "weft_up")) {
			t.Errorf("metrics with Host %q: %d, want 200 with weft_up", host, code)
		}
		if !ok && (code != http.StatusForbidden || strings.Contains(body, "weft_up")) {
			t.Errorf("metrics with Host %q: %d %.100q, want 403", host, code, body)
		}
	}
	_, body := getWithHost(t, addr, "localhost", "/metrics")
	if line := fmt.Sprintf(`weft_http_refused_total{listener="metrics",reason="host"} %d`, want); !strings.Contains(body, line) {
		t.Errorf("/metrics lacks %s", line)
	}
}

// TestAddressOrLocalhost: the Host rule alone, with the forms a Host header takes.
func TestAddressOrLocalhost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.1:9100": true, "[::1]:9100": true, "[::1]": true, "::1": true,
		"10.42.1.1:9100": true, "[fd00::1]:80": true, "localhost": true, "LocalHost:1": true, "localhost.:1": true,
		"": false, ":9100": false, "evil.example": false, "localhost.evil.example:1": false, "evil.localhost": false,
		"127.0.0.1.nip.io": false, "[evil.example]:1": false, "0x7f000001": false, "2130706433": false,
		"127.1": false, "[::1": false, "::%[": false, "[fe80::1%eth0]:80": false,
	} {
		if got := AddressOrLocalhost(host); got != want {
			t.Errorf("AddressOrLocalhost(%q) = %v, want %v", host, got, want)
		}
	}
}

// FuzzAddressOrLocalhost: any Host accepted names an address or localhost, and the rule
// never panics.
func FuzzAddressOrLocalhost(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9100", "[::1]:1", "localhost", "evil.example:80", "[", "]:", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !AddressOrLocalhost(host) {
			return
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err != nil && strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		} else if err == nil {
			h = hh
		}
		a, err := netip.ParseAddr(h)
		if (err != nil || a.Zone() != "") && !strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
			t.Fatalf("%q accepted: %q is neither an address nor localhost", host, h)
		}
	})
}
