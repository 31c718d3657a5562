package config

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestConfig_ParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "mode: l3\nbogus: 1\n", "line 2"},
		{"bad cidr", "mode: l3\n\ncluster_cidr: 10.42.0.0/99\n", `line 3: "10.42.0.0/99" is not a CIDR prefix`},
		{"bad endpoint", "peers:\n  - public_key: x\n    endpoint: nowhere\n", `line 3: "nowhere" is not an IP:port`},
		{"bad duration", "dns:\n  ttl: soon\n", `line 2: "soon" is not a duration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := parseConfig([]byte(tc.yaml), &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"defaults", "", ""},
		{"plain l3", "encryption: none\n", "only for mode: l2"},
		{"tap_offload in l3", "tap_offload: false\n", "tap_offload: false is only for mode: l2"},
		{"policy flows", "policy_max_flows: 0\n", "policy_max_flows 0"},
		{"policy quota above the table", "policy_max_flows: 1000\npolicy_max_flows_per_peer: 1001\n", "policy_max_flows_per_peer 1001"},
		{"policy quota negative", "policy_max_flows_per_peer: -1\n", "policy_max_flows_per_peer -1"},
		{"bad mode", "mode: l4\n", `mode "l4"`},
		{"peer without prefixes", "peers:\n  - public_key: x\n    endpoint: 192.0.2.1:1\n", "peers[0] (line 2): allowed_ips is empty"},
		{"l2 peer without prefixes", "mode: l2\npeers:\n  - public_key: x\n    endpoint: 192.0.2.1:1\n", "in encrypted l2 a peer may send only from the addresses in its allowed_ips"},
		{"gossip off needs subnet", "gossip:\n  disabled: true\n", "set subnet or address"},
		{"vni range", "vni: 16777216\n", "vni 16777216"},
		{"dns overlay port", "dns:\n  listen: [\"overlay:abc\"]\n", `dns.listen "overlay:abc"`},
		{"dns listen", "dns:\n  listen: [\"localhost:53\"]\n", `dns.listen "localhost:53"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Name = "h"
			if err := parseConfig([]byte(tc.yaml), &cfg); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.ListenPort != 51820 || cfg.MTU != 1412 {
					t.Fatalf("derived defaults: port %d mtu %d", cfg.ListenPort, cfg.MTU)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestConfig_TapOffloadL2 is the allowed side of the "tap_offload in l3" case above.
func TestConfig_TapOffloadL2(t *testing.T) {
	for _, y := range []string{"mode: l2\ntap_offload: false\n", "mode: l2\nencryption: none\ntap_offload: false\n"} {
		cfg := DefaultConfig()
		cfg.Name = "h"
		if err := parseConfig([]byte(y), &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil || cfg.TapOffload {
			t.Fatalf("%q: err %v, tap_offload %v; want valid and false", y, err, cfg.TapOffload)
		}
	}
}

func TestConfig_ExampleFileIsValid(t *testing.T) {
	cfg, err := LoadConfig("../../testdata/weft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Gossip.KeyFile != "/etc/weft/gossip.key" || len(cfg.Peers) != 1 || len(cfg.Services) != 1 || cfg.Services[0].Check == nil {
		t.Fatalf("example parsed wrong: %+v", cfg)
	}
	if cfg.Services[0].Check.Kind.String() != "http" || cfg.Services[0].Check.Interval.String() != "10s" {
		t.Fatalf("service check parsed wrong: %+v", cfg.Services[0].Check)
	}
}

// TestParseConfig_EmptyIsDefaults: yaml.v3 reports an empty document as io.EOF, which must
// mean "the defaults", while a broken document stays an error.
func TestParseConfig_EmptyIsDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n"} {
		cfg := DefaultConfig()
		if err := parseConfig([]byte(in), &cfg); err != nil {
			t.Errorf("parseConfig(%q) = %v, want nil", in, err)
		}
		if !reflect.DeepEqual(cfg, DefaultConfig()) {
			t.Errorf("parseConfig(%q) changed the defaults: %+v", in, cfg)
		}
	}
	cfg := DefaultConfig()
	if err := parseConfig([]byte("mode: [l3\n"), &cfg); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("truncated document: %v, want a syntax error", err)
	}
}

// yamlLeaves walks t's yaml tags and returns, by dotted key, the address of every scalar
// field in v (a pointer to a struct of type t): the wrapper types that read themselves from
// YAML (Prefix, Addr, Duration) and []string count as scalars; lists of records are
// returned in records.
func yamlLeaves(t *testing.T, v reflect.Value, prefix string, leaves map[string]uintptr, records map[string]bool) {
	t.Helper()
	unmarshaler := reflect.TypeFor[yaml.Unmarshaler]()
	st := v.Elem().Type()
	for i := range st.NumField() {
		f := st.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			t.Fatalf("Config field %s%s has no yaml key", prefix, f.Name)
		}
		key := prefix + name
		fv := v.Elem().Field(i)
		switch {
		case reflect.PointerTo(f.Type).Implements(unmarshaler) && f.Type.Kind() == reflect.Struct && f.Type.NumField() == 1:
			leaves[key] = fv.Addr().Pointer() // Prefix, Addr, Duration
		case f.Type.Kind() == reflect.Struct:
			yamlLeaves(t, fv.Addr(), key+".", leaves, records)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			records[key] = true
		default:
			leaves[key] = fv.Addr().Pointer()
		}
	}
}

// TestSettings_EveryYAMLKeyHasItsFlag: every scalar YAML key of Config is exactly one row of
// Settings, and every row's Field points at the field its Key names (so a row cannot set
// the wrong field); flags are unique.
func TestSettings_EveryYAMLKeyHasItsFlag(t *testing.T) {
	var cfg Config
	leaves, records := map[string]uintptr{}, map[string]bool{}
	yamlLeaves(t, reflect.ValueOf(&cfg), "", leaves, records)
	if want := map[string]bool{"peers": true, "services": true, "forward": true, "expose": true}; !reflect.DeepEqual(records, want) {
		t.Errorf("lists of records = %v, want %v", records, want)
	}
	// forward and expose take one record per flag (--forward LISTEN=TO): rows of their own.
	leaves["forward"] = reflect.ValueOf(&cfg.Forward).Pointer()
	leaves["expose"] = reflect.ValueOf(&cfg.Expose).Pointer()
	seenKey, seenFlag := map[string]bool{}, map[string]bool{}
	for _, s := range Settings {
		if seenKey[s.Key] || seenFlag[s.Flag] {
			t.Errorf("setting %q / --%s is declared twice", s.Key, s.Flag)
		}
		seenKey[s.Key], seenFlag[s.Flag] = true, true
		addr, ok := leaves[s.Key]
		if !ok {
			t.Errorf("setting %q (--%s) names no scalar YAML key of Config", s.Key, s.Flag)
			continue
		}
		if got := reflect.ValueOf(s.Field(&cfg)).Pointer(); got != addr {
			t.Errorf("setting %q (--%s): Field points at another field than its key", s.Key, s.Flag)
		}
		if s.Flag == "" || s.Help == "" {
			t.Errorf("setting %q: flag %q, help %q: both are needed", s.Key, s.Flag, s.Help)
		}
	}
	for key := range leaves {
		if !seenKey[key] {
			t.Errorf("YAML key %q has no row in Settings (so no flag)", key)
		}
	}
}
