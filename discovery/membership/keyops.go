package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Gossip key rotation through Serf's key manager: each operation is a Serf query that every
// member answers, so one command changes the keyring of the whole cluster. The procedure
// keeps every member reachable at each step:
//
//  1. InstallKey(new): every member accepts both keys, still sending with the old one;
//  2. UseKey(new): every member sends with the new one (and still accepts the old);
//  3. RemoveKey(old): the old key is gone everywhere.
//
// With Config.KeyringFile set, each member writes its keyring there (0600) after every
// change, and New starts from that file rather than from GossipKey, so that a member
// restarted after a rotation still has the cluster's keys.

// KeyringStatus is the cluster's answer to a keyring operation.
type KeyringStatus struct {
	// Members is how many members the query was sent to; Responses how many answered.
	Members   int `json:"members"`
	Responses int `json:"responses"`
	// Keys maps each installed key (base64) to how many members hold it; Primary the
	// same for the key each member sends with.
	Keys    map[string]int `json:"keys,omitempty"`
	Primary map[string]int `json:"primary,omitempty"`
	// Errors are the members that failed the operation and what they said.
	Errors map[string]string `json:"errors,omitempty"`
}

// ErrKeyring wraps a keyring operation that some member refused or did not answer.
var ErrKeyring = errors.New("keyring")

func keyringStatus(r *serf.KeyResponse, err error) (KeyringStatus, error) {
	if r == nil {
		return KeyringStatus{}, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	st := KeyringStatus{Members: r.NumNodes, Responses: r.NumResp, Keys: r.Keys, Primary: r.PrimaryKeys}
	for node, msg := range r.Messages {
		if msg != "" {
			if st.Errors == nil {
				st.Errors = map[string]string{}
			}
			st.Errors[node] = msg
		}
	}
	if err != nil {
		var names []string
		for n, m := range st.Errors {
			names = append(names, n+": "+m)
		}
		sort.Strings(names)
		return st, fmt.Errorf("%w: %d of %d members answered, %d failed: %s (%v)", ErrKeyring, r.NumResp, r.NumNodes, r.NumErr, strings.Join(names, "; "), err)
	}
	return st, nil
}

func (c *Cluster) keyManager() (*serf.KeyManager, error) {
	if !c.serf.EncryptionEnabled() {
		return nil, fmt.Errorf("%w: gossip is not encrypted (insecure gossip): there is no keyring", ErrKeyring)
	}
	return c.serf.KeyManager(), nil
}

// ListKeys asks every member for its keys.
func (c *Cluster) ListKeys() (KeyringStatus, error) {
	km, err := c.keyManager()
	if err != nil {
		return KeyringStatus{}, err
	}
	return keyringStatus(km.ListKeys())
}

// InstallKey adds key (base64, as `weft keygen --gossip` prints) to every member's keyring.
func (c *Cluster) InstallKey(key string) (KeyringStatus, error) { return c.keyOp(key, "install") }

// UseKey makes an installed key the one every member sends with.
func (c *Cluster) UseKey(key string) (KeyringStatus, error) { return c.keyOp(key, "use") }

// RemoveKey removes a key that is not in use from every member's keyring.
func (c *Cluster) RemoveKey(key string) (KeyringStatus, error) { return c.keyOp(key, "remove") }

func (c *Cluster) keyOp(key, op string) (KeyringStatus, error) {
	if _, err := ParseGossipKey(key); err != nil {
		return KeyringStatus{}, err
	}
	key = strings.TrimSpace(key)
	km, err := c.keyManager()
	if err != nil {
		return KeyringStatus{}, err
	}
	switch op {
	case "install":
		return keyringStatus(km.InstallKey(key))
	case "use":
		return keyringStatus(km.UseKey(key))
	default:
		return keyringStatus(km.RemoveKey(key))
	}
}

// loadKeyringFile reads the keys Serf wrote (a JSON list of base64 keys, the primary first);
// ok is false when the file does not exist.
func loadKeyringFile(path string) (keys [][]byte, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring file: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, false, fmt.Errorf("keyring file %s: not a JSON list of keys: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, false, fmt.Errorf("keyring file %s holds no key: remove it to start from the configured gossip key", path)
	}
	for i, e := range encoded {
		k, err := ParseGossipKey(e)
		if err != nil {
			return nil, false, fmt.Errorf("keyring file %s, key %d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, true, nil
}

// keyringFromFile builds the keyring from the file's keys (the first is the primary).
func keyringFromFile(keys [][]byte) (*memberlist.Keyring, error) {
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("memberlist.NewKeyring: %w", err)
	}
	return kr, nil
}
