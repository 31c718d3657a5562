package membership

import (
	"testing"
)

// hostileKeysOf returns c's keys (base64, the primary first) in memory, and fails the test
// when the keyring file, which wins at restart, says otherwise.
func hostileKeysOf(t *testing.T, c *Cluster) []string {
	t.Helper()
	mem := c.keyring.Keys()
	keys, ok, err := loadKeyringFile(c.cfg.KeyringFile)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return mem
	}
	for i, k := range keys {
		if i >= len(mem) || b64(k) != mem[i] {
			t.Fatalf("%s: keyring file %v differs from the keys in use %v", c.cfg.NodeName, keys, mem)
		}
	}
	return mem
}
