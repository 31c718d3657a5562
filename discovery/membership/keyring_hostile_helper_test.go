package membership

import (
	"testing"
)

// hostileKeysOf returns c's keys (base64, the primary first) as it would start with
// after a restart.
func hostileKeysOf(t *testing.T, c *Cluster) []string {
	t.Helper()
	keys, ok, err := loadKeyringFile(c.cfg.KeyringFile)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return []string{b64(c.cfg.GossipKey)}
	}
	var out []string
	for _, k := range keys {
		out = append(out, b64(k))
	}
	return out
}
