package membership

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/serf/serf"
)

// serfKeyQuery builds the payload of Serf's internal keyring queries (_serf_install-key,
// _serf_use-key, _serf_remove-key) as serf.KeyManager does: the message type
// messageKeyRequestType (7) and a msgpack keyRequest{Key}.
func serfKeyQuery(t *testing.T, key []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(7)
	h := codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	if err := codec.NewEncoder(&buf, &h).Encode(struct{ Key []byte }{key}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHostile_KeyringPartition: a member that holds the gossip key sends Serf's three keyring
// queries filtered to one victim (install a key of its own, make it primary, remove the
// cluster's key), then the same queries to everyone. Nothing may change on any host (its
// keyring in memory and on disk) and the victim must stay in the cluster: no member may ever
// see it as anything but alive, and it keeps seeing the others.
func TestHostile_KeyringPartition(t *testing.T) {
	dir := t.TempDir()
	names := []string{"h0", "h1", "victim"}
	// Probes a little laxer than DefaultLocalConfig's 200/100 ms: under -race on a loaded
	// 2-core machine a 100 ms probe timeout made a healthy h0 "failed" (CI, once). A member
	// really cut off is still declared failed within ~2-3 s, inside check's 5 s.
	config := func(name string) Config {
		cfg := clTestConfig(t, name)
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.SuspicionMult = 500*time.Millisecond, 300*time.Millisecond, 4
		return cfg
	}
	var cs []*Cluster
	for _, n := range names {
		cfg := config(n)
		cfg.KeyringFile = filepath.Join(dir, n+".keyring")
		cs = append(cs, clStartCluster(t, cfg))
	}
	evil := clStartCluster(t, config("evil"))
	for _, c := range append(cs[1:], evil) {
		if _, err := c.Join([]string{clAddrOf(cs[0])}); err != nil {
			t.Fatal(err)
		}
	}
	allAlive := func() error {
		for _, c := range cs {
			for _, n := range names {
				if s := clMemberStatus(c, n); s != StatusAlive {
					return fmt.Errorf("%s sees %s as %s", c.LocalMember().Name, n, s)
				}
			}
		}
		return nil
	}
	clEventually(t, 10*time.Second, "every honest member alive everywhere", func() bool { return allAlive() == nil })
	before := make([][]string, len(cs))
	for i, c := range cs {
		before[i] = hostileKeysOf(t, c)
	}

	evilKey := clRandomKey(t)
	clusterKey := clTestGossipKey
	attack := func(filter []string) {
		for _, q := range []struct {
			name string
			key  []byte
		}{
			{"_serf_install-key", evilKey[:]},
			{"_serf_use-key", evilKey[:]},
			{"_serf_remove-key", clusterKey},
			{"_serf_list-keys", nil},
		} {
			resp, err := evil.serf.Query(q.name, serfKeyQuery(t, q.key), &serf.QueryParam{FilterNodes: filter, Timeout: time.Second})
			if err != nil {
				t.Logf("query %s: %v", q.name, err)
				continue
			}
			for r := range resp.ResponseCh() {
				t.Logf("query %s (filter %v): %s answered %q", q.name, filter, r.From, r.Payload)
				if !bytes.Contains(r.Payload, []byte("encryption not enabled")) {
					t.Errorf("%s acted on %s: Serf holds a keyring", r.From, q.name)
				}
			}
		}
	}
	check := func(phase string) {
		t.Helper()
		// Probes and gossip for a while: a member cut off is declared failed within ~2-3 s here.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if err := allAlive(); err != nil {
				t.Fatalf("%s: keyring queries from a member partitioned the cluster: %v", phase, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i, c := range cs {
			if got := hostileKeysOf(t, c); !slices.Equal(got, before[i]) {
				t.Fatalf("%s: keyring queries from a member changed %s's keyring: %v, was %v", phase, names[i], got, before[i])
			}
		}
	}
	attack([]string{"victim"})
	check("queries filtered to the victim")
	attack(nil)
	check("queries to every member")
}

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
