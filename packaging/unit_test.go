package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/netlab"
)

// TestUnit_SystemdAnalyzeVerify runs `systemd-analyze verify` on weft.service (its
// ExecStart pointed at a real binary, which verify requires to exist).
func TestUnit_SystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		netlab.SkipOrFail(t, "systemd-analyze not installed (apt-get install systemd; .ci/run-deps does)")
	}
	unit, err := os.ReadFile("weft.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("WEFT_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "weft")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/weftnet/weft/cmd/weft").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	text := strings.ReplaceAll(string(unit), "/usr/bin/weft", bin)
	if problems := verify(t, text); len(problems) > 0 {
		t.Errorf("systemd-analyze verify complains:\n%s", strings.Join(problems, "\n"))
	}
	// The check can fail: a misspelt value and an unknown key are reported.
	broken := strings.Replace(text, "Type=notify", "Type=notifyy\nBogusKey=1", 1)
	if problems := verify(t, broken); len(problems) != 2 {
		t.Errorf("verify of a broken unit reported %q, want its two problems", problems)
	}
}

// verify runs systemd-analyze verify on a unit's text and returns the lines that name it:
// verify exits 0 on some problems (unknown keys, unparsable values) and only prints them.
func verify(t *testing.T, text string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weft.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	var problems []string
	if err != nil {
		problems = append(problems, "exit: "+err.Error())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "weft.service") {
			problems = append(problems, line)
		}
	}
	return problems
}

// TestUnit_Contract: what the agent and the README rely on.
func TestUnit_Contract(t *testing.T) {
	unit, err := os.ReadFile("weft.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "DeviceAllow=/dev/net/tun rw",
		"CAP_NET_ADMIN", "AF_NETLINK", "ExecStart=/usr/bin/weft agent -c /etc/weft/weft.yaml", "WatchdogSec="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("weft.service lacks %q", want)
		}
	}
}
