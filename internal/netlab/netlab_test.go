package netlab

import (
	"strings"
	"testing"
)

func TestNetnsLab_LinkAndPing(t *testing.T) {
	l := NewT(t)
	a, err := l.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.AddHost("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Link(a, "eth0", "192.168.77.1/24", b, "eth0", "192.168.77.2/24"); err != nil {
		t.Fatal(err)
	}
	out, err := a.Run("ping", "-c", "1", "-W", "2", "192.168.77.2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping output: %s", out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := run("ip", "netns", "list"); strings.Contains(out, l.ID()) {
		t.Fatalf("namespaces left after Close: %s", out)
	}
}

func TestNetnsLab_Switch(t *testing.T) {
	l := NewT(t)
	var hosts []*Host
	var addrs []string
	for i, n := range []string{"a", "b", "c"} {
		h, err := l.AddHost(n)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		addrs = append(addrs, "192.168.78."+string(rune('1'+i))+"/24")
	}
	if _, err := l.Switch("eth0", hosts, addrs); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"192.168.78.2", "192.168.78.3"} {
		if out, err := hosts[0].Run("ping", "-c", "1", "-W", "2", dst); err != nil || !strings.Contains(out, "1 received") {
			t.Fatalf("ping %s: %v %s", dst, err, out)
		}
	}
}

// testing.TB satisfies T, so tests pass their t.
var _ T = (testing.TB)(nil)

// testingShort must agree with testing.Short, which it reads without importing testing.
func TestTestingShort(t *testing.T) {
	if got, want := testingShort(), testing.Short(); got != want {
		t.Fatalf("testingShort() = %v, testing.Short() = %v", got, want)
	}
}
