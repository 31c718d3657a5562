package membership

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"
)

func TestSlogWriter(t *testing.T) {
	var buf bytes.Buffer
	l := log.New(slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}, "", 0)
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: a)")
	out := buf.String()
	for _, want := range []string{"level=DEBUG", `msg="memberlist: Refuting a suspect message (from: a)"`, "serf_level=WARN"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in %s", want, out)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	for name, c := range map[string]Config{"lan": DefaultConfig(), "local": DefaultLocalConfig()} {
		c.GossipKey = clTestGossipKey
		if err := c.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if c.ProbeTimeout >= c.ProbeInterval {
			t.Errorf("%s: probe timeout %v must be below the interval %v", name, c.ProbeTimeout, c.ProbeInterval)
		}
	}
	if DefaultConfig().BindPort != 7946 || DefaultConfig().ClusterCIDR != DefaultClusterCIDR {
		t.Error("LAN defaults changed")
	}
}
