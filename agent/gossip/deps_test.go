package gossip

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: the gossip glue links neither the agent nor another agent subsystem, nor the
// datapath beyond the peer table's errors.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const weft = "github.com/weftnet/weft/"
	allowed := map[string]bool{weft + "agent/gossip": true, weft + "agent/config": true, weft + "agent/api": true}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, weft+"agent") && !allowed[p] {
			t.Errorf("agent/gossip depends on %s", p)
		}
		for _, bad := range []string{"tunnel", "tap", "l2"} {
			if p == weft+bad || strings.HasPrefix(p, weft+bad+"/") {
				t.Errorf("agent/gossip depends on the datapath: %s", p)
			}
		}
	}
}
