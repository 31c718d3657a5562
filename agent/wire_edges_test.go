package agent

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/clients"
	"github.com/weftnet/weft/crypto"
)

// setTestClients gives a hand-built agent the stock WireGuard clients list, as if loaded
// from its store at start (no datapath: their peers go nowhere).
func setTestClients(t *testing.T, a *Agent, list []api.WGClient) {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clients.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	a.cl = clients.New(clients.Deps{
		Mode: "l3", Encryption: "wireguard", StateDir: dir,
		AddPeer:          func(crypto.PublicKey, netip.Addr, time.Duration) error { return nil },
		EnableForwarding: func() error { return nil },
	})
	if err := a.cl.Start(); err != nil {
		t.Fatal(err)
	}
}
