package trust

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: the trust rules link nothing of the agent, its subsystems or the datapath.
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
	for _, p := range strings.Fields(string(out)) {
		for _, bad := range []string{"agent", "tunnel", "peers", "tap", "l2", "policy", "discovery/catalog"} {
			if p == weft+bad || strings.HasPrefix(p, weft+bad+"/") {
				t.Errorf("discovery/trust depends on %s", p)
			}
		}
	}
}
