package membership

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCluster_KeyRotation rotates the gossip key of a running three-member cluster (install,
// use, remove through one member) while a watcher checks that no member is ever seen as
// anything but alive; afterwards a host with the old key cannot join, one with the new key
// can, and a member restarted from its keyring file keeps the new key.
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
	if err != nil || st.Keys[oldKey] != 3 || st.Primary[oldKey] != 3 {
		t.Fatalf("list before: %+v %v", st, err)
	}
	if _, err := cs[0].RemoveKey(oldKey); err == nil {
		t.Fatal("removing the primary key was accepted")
	}
	if st, err := cs[1].InstallKey(newKey); err != nil || st.Responses != 3 {
		t.Fatalf("install: %+v %v", st, err)
	}
	if st, err := cs[2].UseKey(newKey); err != nil || st.Responses != 3 {
		t.Fatalf("use: %+v %v", st, err)
	}
	time.Sleep(500 * time.Millisecond) // gossip rounds under the new primary, both keys accepted
	if st, err := cs[0].RemoveKey(oldKey); err != nil || st.Responses != 3 {
		t.Fatalf("remove: %+v %v", st, err)
	}
	st, err = cs[0].ListKeys()
	if err != nil || len(st.Keys) != 1 || st.Keys[newKey] != 3 || st.Primary[newKey] != 3 {
		t.Fatalf("list after: %+v %v", st, err)
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
