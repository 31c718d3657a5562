package agent

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/metrics"
)

// syncBuffer is a log sink the console's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func consoleAgent(listen, tokenFile string) (*Agent, *syncBuffer) {
	logs := &syncBuffer{}
	cfg := config.DefaultConfig()
	cfg.Name = "h1"
	cfg.UI = config.UIConfig{Listen: listen, TokenFile: tokenFile}
	return &Agent{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil))}, logs
}

// TestAgent_startConsole: the console serves on ui.listen with its URL in the status and
// its refusals counted under listener "ui"; stopping it clears the URL.
func TestAgent_startConsole(t *testing.T) {
	a, _ := consoleAgent("127.0.0.1:0", "")
	stop, err := a.startConsole()
	if err != nil {
		t.Fatal(err)
	}
	u := a.uiURL.Load()
	if u == nil || !strings.HasPrefix(*u, "http://127.0.0.1:") {
		t.Fatalf("url %v", u)
	}
	resp, err := http.Get(*u + "api/cluster")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"self":"h1"`) {
		t.Errorf("/api/cluster: %d %s", resp.StatusCode, b)
	}
	req, _ := http.NewRequest("GET", *u+"api/cluster", nil)
	req.Host = "rebind.attacker.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("foreign Host: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := a.httpRefused.Snapshot()[metrics.HTTPRefusal{Listener: "ui", Reason: "host"}]; n != 1 {
		t.Errorf("weft_http_refused_total{listener=ui,reason=host} = %d, want 1", n)
	}
	stop()
	if a.uiURL.Load() != nil {
		t.Error("the URL outlives the console")
	}
}

// TestAgent_startConsoleBusy: the default address taken (another agent on this host) is
// a warning that names ui.listen, and the agent goes on; an address the operator chose
// that cannot be bound is an error.
func TestAgent_startConsoleBusy(t *testing.T) {
	if ln, err := net.Listen("tcp", config.DefaultUIListen); err == nil { // else someone holds it already
		defer ln.Close()
	}
	a, logs := consoleAgent(config.DefaultUIListen, "")
	stop, err := a.startConsole()
	if err != nil {
		t.Fatalf("default address busy: %v, want a warning", err)
	}
	stop()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "ui.listen") || a.uiURL.Load() != nil {
		t.Errorf("log %q", logs.String())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, _ = consoleAgent(ln.Addr().String(), "")
	if _, err := a.startConsole(); err == nil || !strings.Contains(err.Error(), "ui.listen") {
		t.Errorf("chosen address busy: %v, want an error naming ui.listen", err)
	}
}

// TestAgent_startConsoleToken: ui.token_file is read with consul_api.token_file's rules.
func TestAgent_startConsoleToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ui.token")
	if err := os.WriteFile(path, []byte("0123456789abcdef-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := consoleAgent("127.0.0.1:0", path)
	if _, err := a.startConsole(); err == nil || !strings.Contains(err.Error(), "ui.token_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("token file 0644: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	stop, err := a.startConsole()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get(*a.uiURL.Load() + "map")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
}
