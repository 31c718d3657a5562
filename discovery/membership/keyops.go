package membership

import (
	"errors"
	"fmt"
)

// Gossip key rotation, one host at a time. The keyring of a host changes only through its
// own Cluster (the agent's local control socket: `weft keyring`); Serf runs without a
// keyring, so it refuses the keyring queries of every member (transport.go). A rotation is
// the same three steps on every kept host, each step done everywhere before the next:
//
//  1. InstallKey(new): the host accepts both keys, still sending with the old one;
//  2. UseKey(new): the host sends with the new one (and still accepts the old);
//  3. RemoveKey(old): the host no longer accepts the old key.
//
// A host that is not given the new key is cut off at step 3: nothing it sends opens any
// more, and it cannot open what the others send since step 2.

// KeyringStatus is this host's keyring. Members and Responses are 1 (this host): the
// shape is the one of the older cluster-wide answer, so that tools keep working.
type KeyringStatus struct {
	Members   int `json:"members"`
	Responses int `json:"responses"`
	// Keys maps each installed key (base64) to 1; Primary the key this host sends with.
	Keys    map[string]int `json:"keys,omitempty"`
	Primary map[string]int `json:"primary,omitempty"`
	// Errors is unused (kept for the older cluster-wide answer).
	Errors map[string]string `json:"errors,omitempty"`
}

// ErrKeyring wraps a keyring operation this host refused.
var ErrKeyring = errors.New("keyring")

func (c *Cluster) localKeyring() (*Keyring, error) {
	if c.keyring == nil {
		return nil, fmt.Errorf("%w: gossip is not encrypted (insecure gossip): there is no keyring", ErrKeyring)
	}
	return c.keyring, nil
}

// ListKeys returns this host's keys.
func (c *Cluster) ListKeys() (KeyringStatus, error) {
	kr, err := c.localKeyring()
	if err != nil {
		return KeyringStatus{}, err
	}
	keys := kr.Keys()
	st := KeyringStatus{Members: 1, Responses: 1, Keys: map[string]int{}, Primary: map[string]int{keys[0]: 1}}
	for _, k := range keys {
		st.Keys[k] = 1
	}
	return st, nil
}

// InstallKey adds key (base64, as `weft keygen --gossip` prints) to this host's keyring.
func (c *Cluster) InstallKey(key string) (KeyringStatus, error) {
	return c.keyOp((*Keyring).Install, key, "install")
}

// UseKey makes an installed key the one this host sends with.
func (c *Cluster) UseKey(key string) (KeyringStatus, error) {
	return c.keyOp((*Keyring).Use, key, "use")
}

// RemoveKey removes a key that this host does not send with from its keyring.
func (c *Cluster) RemoveKey(key string) (KeyringStatus, error) {
	return c.keyOp((*Keyring).Remove, key, "remove")
}

func (c *Cluster) keyOp(op func(*Keyring, string) error, key, name string) (KeyringStatus, error) {
	kr, err := c.localKeyring()
	if err != nil {
		return KeyringStatus{}, err
	}
	if err := op(kr, key); err != nil {
		if errors.Is(err, ErrGossipKeySize) {
			return KeyringStatus{}, err
		}
		return KeyringStatus{}, fmt.Errorf("%w: %s: %w", ErrKeyring, name, err)
	}
	c.log.Info("gossip keyring changed", "op", name, "keys", len(kr.Keys()))
	return c.ListKeys()
}

// TransportDrops counts the gossip input dropped by weft's gossip encryption, by reason
// (Drop* constants; every reason present). Empty with insecure gossip.
func (c *Cluster) TransportDrops() map[string]uint64 {
	if c.keyring == nil {
		return map[string]uint64{}
	}
	return c.drops.snapshot()
}
