package metrics

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/config"
)

// TestServePprof: the profiles are served on loopback, on their own mux only.
func TestServePprof(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	stop, err := ServePprof(config.DebugConfig{PprofListen: addr}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", code, body)
	}
	if code, _ := get("/debug/pprof/cmdline"); code != http.StatusOK {
		t.Fatalf("cmdline: %d", code)
	}
	if code, _ := get("/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the pprof mux: %d, want 404", code)
	}
}

// TestServePprof_RefusesNonLoopback: an address other hosts could reach (all interfaces) is
// refused unless allowed; allowed, it binds.
func TestServePprof_RefusesNonLoopback(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, addr := range []string{":0", "0.0.0.0:0"} {
		if stop, err := ServePprof(config.DebugConfig{PprofListen: addr}, log, nil); !errors.Is(err, config.ErrPprofNotLoopback) {
			if stop != nil {
				stop()
			}
			t.Fatalf("%s: err = %v, want ErrPprofNotLoopback", addr, err)
		}
	}
	stop, err := ServePprof(config.DebugConfig{PprofListen: "0.0.0.0:0", PprofAllowRemote: true}, log, nil)
	if err != nil {
		t.Fatalf("allowed remote: %v", err)
	}
	stop()
}
