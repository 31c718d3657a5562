package trust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/identity"
)

// TestLoadPKI: the agent refuses to start with a certificate of another CA or of another key
// or name, and says what to do; an expired one starts with a warning.
func TestLoadPKI(t *testing.T) {
	dir := t.TempDir()
	priv := newKey(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemOf := func(c *identity.Certificate) []byte {
		b, err := c.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	caFile := write("ca.crt", pemOf(ca.Cert))
	now := time.Now()
	from, to := now.Add(-time.Hour), now.AddDate(0, 1, 0)
	cases := []struct {
		name string
		cert *identity.Certificate
		want string
	}{
		{"valid", ca.Sign(t, "h", priv.Public(), from, to, "10.42.7.0/24"), ""},
		{"other CA", other.Sign(t, "h", priv.Public(), from, to), "unknown CA"},
		{"other key", ca.Sign(t, "h", newKey(t).Public(), from, to), "this host's is"},
		{"other name", ca.Sign(t, "g", priv.Public(), from, to), `node name "g"`},
		{"expiring soon", ca.Sign(t, "h", priv.Public(), from, now.Add(48*time.Hour)), "warn:expires in"},
		{"expired", ca.Sign(t, "h", priv.Public(), now.Add(-48*time.Hour), now.Add(-time.Hour)), "warn:not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Files{CA: caFile, Cert: write("host.crt", pemOf(tc.cert))}
			st, err := LoadPKI(cfg, "h", priv.Public(), now)
			warn, isWarn := strings.CutPrefix(tc.want, "warn:")
			switch {
			case tc.want == "" || isWarn:
				if err != nil {
					t.Fatal(err)
				}
				ws := strings.Join(st.Warnings(now), "\n")
				if (warn == "") != (ws == "") || !strings.Contains(ws, warn) {
					t.Fatalf("warnings %q, want %q", ws, warn)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "weft ca sign") && !strings.Contains(err.Error(), "set name"):
				t.Fatalf("error %v, want it to contain %q and what to do", err, tc.want)
			}
		})
	}
	if st, err := LoadPKI(Files{CA: caFile, Cert: write("host.crt", pemOf(cases[0].cert))}, "h", priv.Public(), now); err != nil || st.PinnedSubnet(pfx("10.42.0.0/16"), 0) != pfx("10.42.7.0/24") {
		t.Fatalf("pinned subnet: %v %v", st, err)
	}
}
