package resolver

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/resolver/resolvertest"
)

func TestResolved_Configure(t *testing.T) {
	f := &resolvertest.Resolvectl{}
	r := Resolved{RunDir: t.TempDir(), Run: f.Run, SameNetns: func() bool { return true }}
	revert, err := r.Configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft.")
	if err != nil {
		t.Fatal(err)
	}
	if err := revert(); err != nil {
		t.Fatal(err)
	}
	want := []string{"dns weft0 10.42.1.1", "domain weft0 ~weft", "default-route weft0 false", "revert weft0"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("resolvectl calls %q, want %q", got, want)
	}
	if s := serverArg(netip.MustParseAddrPort("127.0.0.1:5353")); s != "127.0.0.1:5353" {
		t.Fatalf("non-53 port: %s", s)
	}

	// A failing step reverts what was set and names the step.
	f = &resolvertest.Resolvectl{FailOn: "domain"}
	r.Run = f.Run
	if _, err := r.Configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft."); err == nil || !strings.Contains(err.Error(), "resolvectl domain") {
		t.Fatalf("failing domain step: %v", err)
	}
	if got := f.Calls(); got[len(got)-1] != "revert weft0" {
		t.Fatalf("no revert after a failed step: %q", got)
	}

	// Not running, or another network namespace: not configured, and resolvectl is never run.
	f = &resolvertest.Resolvectl{}
	for _, r := range []Resolved{
		{RunDir: filepath.Join(t.TempDir(), "absent"), Run: f.Run, SameNetns: func() bool { return true }},
		{RunDir: t.TempDir(), Run: f.Run, SameNetns: func() bool { return false }},
	} {
		if _, err := r.Configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft."); !errors.Is(err, ErrNoResolved) {
			t.Fatalf("configure without resolved: %v", err)
		}
	}
	if got := f.Calls(); len(got) != 0 {
		t.Fatalf("resolvectl run without resolved: %q", got)
	}
}

func TestSetup(t *testing.T) {
	cfg := config.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	none := Resolved{RunDir: filepath.Join(t.TempDir(), "absent")}
	out := Setup(cfg, none)
	for _, want := range []string{"server=/weft/127.0.0.1", "nameserver 127.0.0.1", "not running"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup without resolved lacks %q:\n%s", want, out)
		}
	}
	cfg.DNS.Listen = []string{"127.0.0.1:5353"}
	if out := Setup(cfg, none); !strings.Contains(out, "server=/weft/127.0.0.1#5353") || !strings.Contains(out, "cannot name a port") {
		t.Errorf("port 5353:\n%s", out)
	}
	running := Resolved{RunDir: t.TempDir(), SameNetns: func() bool { return true }}
	if out := Setup(cfg, running); !strings.Contains(out, "configures it itself") {
		t.Errorf("with resolved:\n%s", out)
	}
	cfg.DNS.Listen = []string{"overlay:53"}
	if out := Setup(cfg, none); !strings.Contains(out, "no loopback address") {
		t.Errorf("no loopback listen:\n%s", out)
	}
}
