package membership

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCluster_KeyRotation rotates the gossip key of a running three-member cluster, host by
// host (install everywhere, use everywhere, remove everywhere), while a watcher checks that no
// member is ever seen as anything but alive; afterwards a host with the old key cannot join,
// one with the new key can, and a member restarted from its keyring file keeps the new key.
func TestCluster_KeyRotation(t *testing.T) {
	dir := t.TempDir()
	var cs []*Cluster
	for i := range 3 {
		cfg := clTestConfig(t, fmt.Sprintf("k%d", i))
		cfg.KeyringFile = filepath.Join(dir, fmt.Sprintf("k%d.keyring", i))
		cs = append(cs, clStartCluster(t, cfg))
	}
	for _, c := range cs[1:] {
		if _, err := c.Join([]string{clAddrOf(cs[0])}); err != nil {
			t.Fatal(err)
		}
	}
	allAlive := func() error {
		for _, c := range cs {
			for _, n := range []string{"k0", "k1", "k2"} {
				if s := clMemberStatus(c, n); s != StatusAlive {
					return fmt.Errorf("%s sees %s as %s", c.LocalMember().Name, n, s)
				}
			}
		}
		return nil
	}
	clEventually(t, 10*time.Second, "three alive members", func() bool { return allAlive() == nil })

	// A watcher: from here on every member must stay alive in every view.
	var lost atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if err := allAlive(); err != nil {
					lost.CompareAndSwap(nil, err.Error())
				}
			}
		}
	}()

	oldKey := base64.StdEncoding.EncodeToString(clTestGossipKey)
	newKeyRaw := clRandomKey(t)
	newKey := base64.StdEncoding.EncodeToString(newKeyRaw[:])

	st, err := cs[0].ListKeys()
	if err != nil || len(st.Keys) != 1 || st.Keys[oldKey] != 1 || st.Primary[oldKey] != 1 {
		t.Fatalf("list before: %+v %v", st, err)
	}
	if _, err := cs[0].RemoveKey(oldKey); !errors.Is(err, ErrRemovePrimary) {
		t.Fatalf("removing the primary key: %v", err)
	}
	if _, err := cs[0].UseKey(newKey); !errors.Is(err, ErrKeyNotInstalled) {
		t.Fatalf("using a key not installed: %v", err)
	}
	step := func(name string, op func(*Cluster, string) (KeyringStatus, error), key string) {
		for i, c := range cs {
			if _, err := op(c, key); err != nil {
				t.Fatalf("%s on k%d: %v", name, i, err)
			}
		}
		time.Sleep(500 * time.Millisecond) // gossip rounds between the steps
	}
	step("install", (*Cluster).InstallKey, newKey)
	step("use", (*Cluster).UseKey, newKey)
	step("remove", (*Cluster).RemoveKey, oldKey)
	for i, c := range cs {
		st, err := c.ListKeys()
		if err != nil || len(st.Keys) != 1 || st.Keys[newKey] != 1 || st.Primary[newKey] != 1 {
			t.Fatalf("k%d's keys after: %+v %v", i, st, err)
		}
	}
	time.Sleep(time.Second) // probes and gossip with the new key only
	close(stop)
	wg.Wait()
	if v := lost.Load(); v != nil {
		t.Fatalf("a member was lost during the rotation: %s", v)
	}
	if err := allAlive(); err != nil {
		t.Fatal(err)
	}

	// The keyring files hold the new key only.
	for i := range 3 {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("k%d.keyring", i)))
		var keys []string
		if err != nil || json.Unmarshal(data, &keys) != nil || len(keys) != 1 || keys[0] != newKey {
			t.Fatalf("k%d's keyring file: %s %v", i, data, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("k%d.keyring", i))); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("k%d's keyring file mode: %v %v", i, fi.Mode(), err)
		}
	}

	// A host with the old key is refused; one with the new key joins.
	old := clStartCluster(t, clTestConfig(t, "old"))
	if _, err := old.Join([]string{clAddrOf(cs[0])}); err == nil {
		t.Fatal("a host with the rotated-out key joined")
	}
	fresh := clTestConfig(t, "fresh")
	fresh.GossipKey = newKeyRaw[:]
	if _, err := clStartCluster(t, fresh).Join([]string{clAddrOf(cs[0])}); err != nil {
		t.Fatalf("a host with the new key: %v", err)
	}

	// A member restarted with the old key in its config but its keyring file kept
	// starts from the file and rejoins.
	cs[2].Shutdown()
	cfg := clTestConfig(t, "k2")
	cfg.KeyringFile = filepath.Join(dir, "k2.keyring")
	back := clStartCluster(t, cfg) // GossipKey is still the old one
	if _, err := back.Join([]string{clAddrOf(cs[0])}); err != nil {
		t.Fatalf("restart from the keyring file: %v", err)
	}
}

func TestLoadKeyringFile_Hostile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json": "nope", "empty": "[]", "short key": `["AAAA"]`, "not base64": `["!!!"]`, "object": `{"a":1}`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadKeyringFile(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, ok, err := loadKeyringFile(filepath.Join(dir, "missing")); ok || err != nil {
		t.Errorf("missing file: ok %v err %v", ok, err)
	}
}

func TestCluster_KeyringInsecure(t *testing.T) {
	cfg := clTestConfig(t, "plain")
	cfg.GossipKey, cfg.Insecure = nil, true
	c := clStartCluster(t, cfg)
	if _, err := c.ListKeys(); !errors.Is(err, ErrKeyring) {
		t.Fatalf("ListKeys without encryption: %v", err)
	}
}

// TestCluster_RotationEvicts: a rotation on the kept hosts (install, use, remove) cuts off the
// host that is not given the new key: the others declare it failed, what it still sends is
// dropped and counted, and it cannot join again with the old key.
func TestCluster_RotationEvicts(t *testing.T) {
	names := []string{"keep0", "keep1", "rogue"}
	var cs []*Cluster
	for _, n := range names {
		cs = append(cs, clStartCluster(t, clTestConfig(t, n)))
	}
	for _, c := range cs[1:] {
		if _, err := c.Join([]string{clAddrOf(cs[0])}); err != nil {
			t.Fatal(err)
		}
	}
	clEventually(t, 10*time.Second, "three alive members", func() bool {
		for _, c := range cs {
			for _, n := range names {
				if clMemberStatus(c, n) != StatusAlive {
					return false
				}
			}
		}
		return true
	})
	oldKey := base64.StdEncoding.EncodeToString(clTestGossipKey)
	raw := clRandomKey(t)
	newKey := base64.StdEncoding.EncodeToString(raw[:])
	kept := cs[:2]
	for _, step := range []func(*Cluster) (KeyringStatus, error){
		func(c *Cluster) (KeyringStatus, error) { return c.InstallKey(newKey) },
		func(c *Cluster) (KeyringStatus, error) { return c.UseKey(newKey) },
		func(c *Cluster) (KeyringStatus, error) { return c.RemoveKey(oldKey) },
	} {
		for _, c := range kept {
			if _, err := step(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	clEventually(t, 15*time.Second, "the kept hosts see the rogue failed and each other alive", func() bool {
		for _, c := range kept {
			if clMemberStatus(c, "rogue") == StatusAlive || clMemberStatus(c, "keep0") != StatusAlive || clMemberStatus(c, "keep1") != StatusAlive {
				return false
			}
		}
		return true
	})
	clEventually(t, 15*time.Second, "the rogue sees both kept hosts failed", func() bool {
		return clMemberStatus(cs[2], "keep0") != StatusAlive && clMemberStatus(cs[2], "keep1") != StatusAlive
	})
	if d := cs[0].TransportDrops(); d[DropPacketKey] == 0 {
		t.Errorf("the rogue's packets were not counted as %s at keep0: %v", DropPacketKey, d)
	}
	if _, err := cs[2].Join([]string{clAddrOf(cs[0])}); err == nil {
		t.Fatal("the evicted host joined again with the old key")
	} else {
		t.Logf("rejoin with the old key: %v", err)
	}
	if clMemberStatus(cs[0], "rogue") == StatusAlive {
		t.Fatal("the evicted host is alive again at keep0")
	}
}

// TestOpenKeyring_MigratesSerfKeyring: an older weft's serf.keyring is read once into the
// keyring file (0600) and removed; the file then wins over the configured key.
func TestOpenKeyring_MigratesSerfKeyring(t *testing.T) {
	dir := t.TempDir()
	a, b := clRandomKey(t), clRandomKey(t)
	legacy := filepath.Join(dir, "serf.keyring")
	data, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(a[:]), base64.StdEncoding.EncodeToString(b[:])})
	if err := os.WriteFile(legacy, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := clTestConfig(t, "m")
	cfg.KeyringFile, cfg.LegacyKeyringFile = filepath.Join(dir, "gossip.keyring"), legacy
	kr, err := openKeyring(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Keys(); len(got) != 2 || got[0] != base64.StdEncoding.EncodeToString(a[:]) {
		t.Fatalf("migrated keys %v", got)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serf.keyring still there: %v", err)
	}
	if fi, err := os.Stat(cfg.KeyringFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", fi, err)
	}
	// A corrupt older keyring is refused with what to do, never silently ignored.
	if err := os.WriteFile(legacy, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.KeyringFile = filepath.Join(dir, "other.keyring")
	if _, err := openKeyring(&cfg); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("corrupt serf.keyring: %v", err)
	}
}
