package catalog

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckMachine_Observe(t *testing.T) {
	const P, W, C = HealthPassing, HealthWarning, HealthCritical
	tests := []struct {
		name          string
		kind          CheckKind
		fails, passes int
		results       []Health
		want          []Health // state after each result
	}{
		{"starts critical, one pass passes", CheckTCP, 1, 1, []Health{P}, []Health{P}},
		{"needs M passes", CheckTCP, 1, 3, []Health{P, P, P}, []Health{C, C, P}},
		{"a failure resets the pass count", CheckTCP, 1, 2, []Health{P, C, P, P}, []Health{C, C, C, P}},
		{"N failures before critical", CheckTCP, 3, 1, []Health{P, C, C, C}, []Health{P, P, P, C}},
		{"a pass resets the failure count", CheckTCP, 2, 1, []Health{P, C, P, C, C}, []Health{P, P, P, P, C}},
		{"flapping never leaves passing", CheckTCP, 2, 1, []Health{P, C, P, C, P, C}, []Health{P, P, P, P, P, P}},
		{"warning counts as a failure", CheckTCP, 2, 1, []Health{P, W, W}, []Health{P, P, W}},
		{"warning then critical", CheckTCP, 2, 1, []Health{P, W, C}, []Health{P, P, C}},
		{"non-passing follows each result", CheckTCP, 2, 2, []Health{W, C, W}, []Health{W, C, W}},
		{"both thresholds", CheckHTTP, 2, 2, []Health{P, P, C, C, P, P}, []Health{C, P, P, C, C, P}},
		{"ttl ignores thresholds", CheckTTL, 5, 5, []Health{P, C, P}, []Health{P, C, P}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newCheckMachine(&CheckDef{Kind: tt.kind, FailuresBeforeCritical: tt.fails, PassesBeforePassing: tt.passes})
			if m.health != HealthCritical {
				t.Fatalf("initial state %v", m.health)
			}
			for i, r := range tt.results {
				before := m.health
				changed := m.observe(r)
				if m.health != tt.want[i] {
					t.Fatalf("after result %d (%v): %v, want %v", i, r, m.health, tt.want[i])
				}
				if changed != (before != m.health) {
					t.Fatalf("result %d: changed=%v but %v -> %v", i, changed, before, m.health)
				}
			}
		})
	}
}

func TestCheckRunner_Probers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(204)
		case "/busy":
			w.WriteHeader(429)
		default:
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name string
		def  CheckDef
		want Health
	}{
		{"tcp open", CheckDef{Kind: CheckTCP, Target: ln.Addr().String()}, HealthPassing},
		{"tcp refused", CheckDef{Kind: CheckTCP, Target: closedAddr}, HealthCritical},
		{"http 2xx", CheckDef{Kind: CheckHTTP, Target: srv.URL + "/ok"}, HealthPassing},
		{"http 429", CheckDef{Kind: CheckHTTP, Target: srv.URL + "/busy"}, HealthWarning},
		{"http 500", CheckDef{Kind: CheckHTTP, Target: srv.URL + "/fail"}, HealthCritical},
		{"http refused", CheckDef{Kind: CheckHTTP, Target: "http://" + closedAddr + "/"}, HealthCritical},
		{"exec 0", CheckDef{Kind: CheckExec, Args: []string{"sh", "-c", "echo fine"}}, HealthPassing},
		{"exec 1", CheckDef{Kind: CheckExec, Args: []string{"sh", "-c", "exit 1"}}, HealthWarning},
		{"exec 2", CheckDef{Kind: CheckExec, Args: []string{"sh", "-c", "exit 2"}}, HealthCritical},
		{"exec target split", CheckDef{Kind: CheckExec, Target: "sh -c true"}, HealthPassing},
		{"exec missing", CheckDef{Kind: CheckExec, Target: "/nonexistent/weft-check"}, HealthCritical},
		{"exec timeout", CheckDef{Kind: CheckExec, Args: []string{"sleep", "10"}, Timeout: 100 * time.Millisecond}, HealthCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.def.Timeout == 0 {
				tt.def.Timeout = 5 * time.Second
			}
			var got Health = 99
			var out string
			r := newCheckRunner(tt.def, func(_ *checkRunner, h Health, o string) { got, out = h, o })
			if r.closeFn != nil {
				defer r.closeFn()
			}
			start := time.Now()
			r.step(context.Background())
			if got != tt.want {
				t.Fatalf("health %v (%q), want %v", got, out, tt.want)
			}
			if time.Since(start) > 4*time.Second {
				t.Fatalf("probe took %v", time.Since(start))
			}
			t.Logf("%v: %q", got, out)
		})
	}
}

func TestCheckOutput_Write(t *testing.T) {
	b := newCheckOutput()
	b.Write([]byte(strings.Repeat("x", maxCheckOutput-1)))
	b.Write([]byte("yz"))
	if s := b.String(); len(s) != maxCheckOutput || !strings.HasSuffix(s, "y") {
		t.Fatalf("len %d", len(s))
	}
}
