package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/api"
)

// fakeStatus serves GET /v1/status with st on a unix socket, as the agent does.
func fakeStatus(t *testing.T, st api.Status) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "weft.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// TestUI: weft ui prints the console's URL from the status, says how to log in with a
// token, and fails with what to set when the console is off.
func TestUI(t *testing.T) {
	sock := fakeStatus(t, api.Status{Name: "h1", UI: "http://127.0.0.1:9190/"})
	if out, err := run(t, "", "--socket", sock, "ui"); err != nil || out != "http://127.0.0.1:9190/\n" {
		t.Errorf("weft ui: %q %v", out, err)
	}
	if out, err := run(t, "", "--socket", sock, "ui", "--json"); err != nil || !strings.Contains(out, `"url": "http://127.0.0.1:9190/"`) {
		t.Errorf("weft ui --json: %q %v", out, err)
	}
	if out, err := run(t, "", "--socket", sock, "status"); err != nil || !strings.Contains(out, "http://127.0.0.1:9190/") {
		t.Errorf("weft status: %q %v", out, err)
	}
	sock = fakeStatus(t, api.Status{Name: "h1", UI: "http://10.0.0.5:9190/", UIToken: true})
	if out, err := run(t, "", "--socket", sock, "ui"); err != nil || !strings.Contains(out, "login?token=") || !strings.Contains(out, "ui.token_file") {
		t.Errorf("weft ui with a token: %q %v", out, err)
	}
	sock = fakeStatus(t, api.Status{Name: "h1"})
	if _, err := run(t, "", "--socket", sock, "ui"); err == nil || !strings.Contains(err.Error(), "ui.listen") {
		t.Errorf("weft ui, console off: %v", err)
	}
}
