package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// goWords are what a configuration message must never say: Go's type names and the YAML
// decoder's jargon. The operator wrote YAML keys and values, and the message speaks of those
// (catalog.max_services is a key; catalog.Service, with a capital, a Go type).
var goWords = regexp.MustCompile(`agent\.[A-Z]|catalog\.[A-Z]|netip|time\.Duration|\bConfig\b|GossipConfig|PeerConfig|DNSConfig|CheckDef|\b(u?int(8|16|32|64)?|string|bool|float(32|64)|struct|map|slice|\[\]\w+)\b|!!|unmarshal|reflect|\bfield\b`)

func TestConfig_MessagesNameKeysNotGoTypes(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"typo at top", "modee: l3\n", "line 1: modee: unknown key; did you mean mode?"},
		{"typo nested", "gossip:\n  retry_joinn: [a]\n", "line 2: gossip.retry_joinn: unknown key; did you mean retry_join?"},
		{"typo in a peer", "peers:\n  - public_kee: x\n", "line 2: peers[0].public_kee: unknown key; did you mean public_key?"},
		{"typo in a service check", "services:\n  - name: web\n    port: 80\n    check:\n      intervall: 5s\n", "line 5: services[0].check.intervall: unknown key; did you mean interval?"},
		{"no near key", "zzzzzzzz: 1\n", "line 1: zzzzzzzz: unknown key"},
		{"int as text", "listen_port: abc\n", `line 1: listen_port: "abc" is not a whole number`},
		{"uint32 negative", "vni: -1\n", `line 1: vni: "-1" is not a whole number from 0 to 4294967295`},
		{"service port too big", "services:\n  - name: web\n    port: 70000\n", `line 3: services[0].port: "70000" is not a whole number from 0 to 65535`},
		{"bool", "arp_suppression: maybe\n", `line 1: arp_suppression: "maybe" is not true or false`},
		{"string given a list", "name: [a, b]\n", "line 1: name: must be a single value, not a list"},
		{"list given a value", "gossip:\n  join: 10.0.0.1\n", "line 2: gossip.join: must be a list"},
		{"section given a value", "gossip: yes\n", "line 1: gossip: must be a section of keys, not a single value"},
		{"peer given a value", "peers:\n  - 10.0.0.1\n", "line 2: peers[0]: must be a section of keys"},
		{"prefix given a list", "cluster_cidr: [10.0.0.0/8]\n", "line 1: cluster_cidr: must be a single value, not a list"},
		{"bad prefix", "subnet: 10.42.1.0/33\n", `line 1: "10.42.1.0/33" is not a CIDR prefix`},
		{"bad duration", "gossip:\n  retry_interval: often\n", `line 2: "often" is not a duration`},
		{"bad check duration", "services:\n  - name: web\n    port: 80\n    check:\n      kind: tcp\n      interval: often\n", `line 6: services[0].check.interval: "often" is not a duration`},
		{"bad check kind", "services:\n  - name: web\n    port: 80\n    check:\n      kind: ping\n", `unknown check kind "ping"`},
		{"syntax", "mode: [l3\n", "line"},
		{"two problems at once", "modee: l3\nvnii: 2\n", "line 2: vnii: unknown key; did you mean vni?"},
		// Validate's messages, after a clean parse.
		{"service without port, with its line", "mode: l3\nservices:\n  - name: web\n", "services[0] (line 3): "},
		{"service check without target", "services:\n  - name: web\n    port: 80\n  - name: db\n    port: 5432\n    check:\n      kind: tcp\n", "services[1] (line 4): "},
		{"retry_interval", "gossip:\n  retry_interval: 0s\n", "gossip.retry_interval 0s: must be positive"},
		{"retry_max", "gossip:\n  retry_max: -1\n", "gossip.retry_max -1"},
		{"crypto_workers negative", "crypto_workers: -1\n", "crypto_workers -1: must be 0 (automatic) to 64"},
		{"crypto_workers too many", "crypto_workers: 65\n", "crypto_workers 65: must be 0 (automatic) to 64"},
		{"log_format", "log_format: xml\n", `log_format "xml": must be text or json`},
		{"log_level", "log_level: loud\n", `log_level "loud"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name = "h"
			err := parseConfig([]byte(tc.yaml), &cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error = %q, want it to contain %q", msg, tc.want)
			}
			if bad := goWords.FindString(msg); bad != "" {
				t.Errorf("error %q names %q, a Go type or decoder word", msg, bad)
			}
		})
	}
}

// TestGoWords_Catches proves the ban list would catch yaml.v3's own messages.
func TestGoWords_Catches(t *testing.T) {
	for _, msg := range []string{
		"line 1: field modee not found in type agent.Config",
		"line 2: cannot unmarshal !!str `abc` into int",
		"line 3: cannot unmarshal !!seq into string",
		"line 4: cannot unmarshal !!str `x` into netip.Prefix",
		"line 5: cannot unmarshal !!map into []agent.PeerConfig",
		"bad value for uint16",
	} {
		if !goWords.MatchString(msg) {
			t.Errorf("ban list misses %q", msg)
		}
	}
	if m := yamlMessage(errString("yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `abc` into int")); goWords.MatchString(m) || !strings.Contains(m, "line 2") {
		t.Errorf("yamlMessage left %q", m)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestNearest(t *testing.T) {
	keys := []string{"mode", "mtu", "name", "vni", "gossip", "retry_join", "retry_interval"}
	for in, want := range map[string]string{"modee": "mode", "mdoe": "mode", "gosip": "gossip", "retryjoin": "retry_join", "xyzzy": "", "vin": "vni"} {
		if got := nearest(in, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfig_Check(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Gossip.KeyFile = keyFile
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	cfg.Gossip.KeyFile = keyFile
	if err := cfg.Check(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Trust = TrustSharedKey
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "no gossip key") {
		t.Fatalf("no key: %v", err)
	}
	// With the CA (the default), the key of an enrolled host or a CA host is read from the
	// state directory, and checked there.
	cfg = DefaultConfig()
	cfg.StateDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "gossip.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("a bad key in the state directory: %v", err)
	}
}

// FuzzParseConfig: any document either parses or is refused with a message free of Go type
// names; never a panic. A parsed document that validates parses again to the same result
// from its re-marshalled form.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/weft.yaml"); err == nil {
		f.Add(string(b))
	}
	for _, s := range []string{"modee: l3\n", "listen_port: abc\n", "gossip: yes\n", "peers:\n  - 10.0.0.1\n",
		"services:\n  - name: web\n    port: 70000\n", "gossip:\n  join: 10.0.0.1\n", "a: &x [1]\nb: *x\n", "mode: [l3\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg := DefaultConfig()
		err := parseConfig([]byte(doc), &cfg)
		if err != nil {
			// A message may quote what the user wrote (an unknown key "a!!b" is named as
			// given); it must not add Go's or YAML's words of its own.
			if bad := goWords.FindString(err.Error()); bad != "" && !strings.Contains(doc, bad) {
				t.Fatalf("message %q names %q", err, bad)
			}
			return
		}
		if cfg.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(&cfg)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again := DefaultConfig()
		if err := parseConfig(out, &again); err != nil {
			t.Fatalf("re-parse of\n%s: %v", out, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("re-validate of\n%s: %v", out, err)
		}
	})
}
