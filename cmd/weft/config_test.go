package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentCheck: `weft agent --check -c FILE` and `weft config check FILE` name the key
// and line of a mistake, accept a good file, and open nothing (the control socket and the
// state directory are not created).
func TestAgentCheck(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	if err := writeFile(key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"); err != nil {
		t.Fatal(err)
	}
	sock, state := filepath.Join(dir, "run", "weft.sock"), filepath.Join(dir, "state")
	good := filepath.Join(dir, "good.yaml")
	if err := writeFile(good, "name: h1\nstate_dir: "+state+"\ncontrol_socket: "+sock+"\ngossip:\n  key_file: "+key+"\n"); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := writeFile(bad, "name: h1\nmodee: l3\n"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"agent", "--check", "-c", good}, {"config", "check", good}} {
		out, err := run(t, "", args...)
		if err != nil || !strings.Contains(out, "configuration OK") {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	for _, p := range []string{sock, filepath.Dir(sock), state} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("the check created %s", p)
		}
	}
	for _, args := range [][]string{{"agent", "--check", "-c", bad}, {"config", "check", bad}} {
		_, err := run(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), bad+": line 2: modee: unknown key; did you mean mode?") {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// A Consul API that takes token-less writes from every local user is warned of.
	if out, err := run(t, "", "agent", "--check", "-c", good, "--consul-listen", "127.0.0.1:8500"); err != nil ||
		!strings.Contains(out, "warning: consul_api.listen 127.0.0.1:8500 takes writes with no token") {
		t.Fatalf("check of a token-less Consul API: %v %s", err, out)
	}
	// A flag is checked too, and the check of the gossip key happens (none given here): in
	// shared-key mode it must be configured.
	if _, err := run(t, "", "agent", "--check", "--trust", "shared-key", "--name", "h1", "--state-dir", state); err == nil || !strings.Contains(err.Error(), "no gossip key") {
		t.Fatalf("check without a gossip key: %v", err)
	}
	// With the CA (the default) the key comes with the cluster: a host joining nobody creates
	// it at its first start; a host joining others needs a join token, and the check says so.
	if out, err := run(t, "", "agent", "--check", "--name", "h1", "--state-dir", state); err != nil || !strings.Contains(out, "configuration OK") {
		t.Fatalf("check of a first CA host: %v %s", err, out)
	}
	if _, err := run(t, "", "agent", "--check", "--name", "h1", "--state-dir", state, "--retry-join", "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "weft token create") {
		t.Fatalf("check of a joiner without a token: %v", err)
	}
	if out, err := run(t, "", "agent", "--check", "--name", "h1", "--state-dir", state, "--retry-join", "192.0.2.1", "--join-token", "weft1.x"); err != nil && strings.Contains(err.Error(), "gossip key") {
		t.Fatalf("check of a joiner with a token asks for a gossip key: %v %s", err, out)
	}
}

// TestAgentCheck_Device: --check names what the mode really uses: a TUN in l3, a TAP in l2,
// and in netstack mode no device at all but the proxies and relays.
func TestAgentCheck_Device(t *testing.T) {
	dir := t.TempDir()
	base := []string{"agent", "--check", "--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "weft.sock"),
		"--trust", "shared-key", "--no-gossip", "--subnet", "10.42.3.0/24", "--mtu", "1200"}
	for _, tc := range []struct {
		args      []string
		want, not string
	}{
		{nil, "TUN device weft0", "TAP"},
		{[]string{"--mode", "l2", "--interface", "tap7"}, "TAP device tap7", "TUN"},
		{[]string{"--netstack", "--socks5", "127.0.0.1:1080", "--forward", "127.0.0.1:5432=db.service.weft:5432"},
			"userspace network stack (netstack: no TUN device; reached through SOCKS5 127.0.0.1:1080", "interface weft0"},
	} {
		out, err := run(t, "", append(append([]string{}, base...), tc.args...)...)
		if err != nil || !strings.Contains(out, tc.want) || strings.Contains(out, tc.not) {
			t.Errorf("%v: %v\n%s\nwant %q, not %q", tc.args, err, out, tc.want, tc.not)
		}
	}
}
