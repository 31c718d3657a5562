package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/crypto"
)

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKeygen_PublicMatchesCrypto(t *testing.T) {
	priv, err := run(t, "", "keygen")
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.ParsePrivateKey(strings.TrimSpace(priv))
	if err != nil {
		t.Fatalf("keygen printed %q: %v", priv, err)
	}
	pub, err := run(t, priv, "keygen", "--public")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(pub) != k.Public().String() {
		t.Fatalf("keygen --public = %q, want %q", pub, k.Public().String())
	}
	if _, err := run(t, "not a key\n", "keygen", "--public"); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Fatalf("bad key on stdin: %v", err)
	}
	g, err := run(t, "", "keygen", "--gossip")
	if err != nil || len(strings.TrimSpace(g)) != 44 {
		t.Fatalf("keygen --gossip = %q, %v", g, err)
	}
}

func TestClient_AgentNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status"}, {"members"}, {"peers", "--json"}, {"services"}, {"join", "192.0.2.1"}} {
		_, err := run(t, "", append([]string{"--socket", sock}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "no weft agent is running at "+sock) {
			t.Fatalf("weft %v: %v", args, err)
		}
	}
}

func TestAgent_BadConfigNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "weft.yaml")
	if err := writeFile(cfg, "mode: l3\ncluster_cidr: nonsense\n"); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, "", "agent", "-c", cfg)
	if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad config: %v", err)
	}
	_, err = run(t, "", "agent", "--mode", "l4")
	if err == nil || !strings.Contains(err.Error(), `mode "l4"`) {
		t.Fatalf("bad flag: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
