package rootless

import (
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestImports: a subsystem links neither the agent nor another of the agent's subsystems
// (agent/config and agent/api are no subsystems). Through agent/config it links discovery's
// catalog and membership packages, which is allowed.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	const self = "github.com/weftnet/weft/agent/rootless"
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/weftnet/weft/agent" ||
			strings.HasPrefix(p, "github.com/weftnet/weft/agent/") && p != self && p != "github.com/weftnet/weft/agent/config" {
			t.Errorf("agent/rootless imports %s", p)
		}
	}
}
