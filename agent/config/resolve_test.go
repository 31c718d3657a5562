package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestResolve_ReportsEveryProblem: two separate mistakes in one file are both reported, each
// naming its key and the line the file gave it, where Validate used to stop at the first.
func TestResolve_ReportsEveryProblem(t *testing.T) {
	raw := DefaultConfig()
	raw.Name = "h"
	doc := "mode: l3\nvni: 0\nlog_level: loud\n"
	if err := parseConfig([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(raw)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"line 2: vni 0: must be 1-16777215", `line 3: log_level "loud": must be debug, info, warn or error`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
	got := Problems(err)
	want := []Error{{Key: "vni", Line: 2}, {Key: "log_level", Line: 3}}
	if len(got) != len(want) {
		t.Fatalf("problems = %v, want %d", got, len(want))
	}
	for i, p := range got {
		if p.Key != want[i].Key || p.Line != want[i].Line {
			t.Errorf("problem %d = key %q line %d, want key %q line %d", i, p.Key, p.Line, want[i].Key, want[i].Line)
		}
	}
	// Validate keeps its contract: one error holding each problem.
	cfg := raw
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "vni 0") || !strings.Contains(err.Error(), `log_level "loud"`) {
		t.Fatalf("Validate = %v, want both problems", err)
	}
}

// TestResolve_ManyProblemsNameKnownKeys: a configuration wrong everywhere at once; every
// problem is reported, under a key of Config, and its message names that key.
func TestResolve_ManyProblemsNameKnownKeys(t *testing.T) {
	c := DefaultConfig()
	c.Name = ""
	c.Groups = []string{"a b"}
	c.Mode, c.VNI, c.MTU, c.ListenPort, c.Interface = "l4", 0, 100, 70000, ""
	c.PolicyMaxFlows = 0
	c.ClusterCIDR = Prefix{}
	c.Gossip.AllowedStatic = []string{"x"}
	c.Gossip.RetryInterval, c.Gossip.RetryMax = Duration{}, -1
	c.PKI.Cert = "host.crt"
	c.Peers = []PeerConfig{{}}
	c.LogLevel, c.LogFormat = "loud", "xml"
	c.DNS.Listen = []string{"overlay:x", "nowhere"}
	c.ConsulAPI.Listen = []string{"nowhere"}
	c.Forward = []ForwardConfig{{Listen: "x"}}
	_, err := Resolve(c)
	probs := Problems(err)
	keys := map[string]bool{}
	for _, p := range probs {
		keys[p.Key] = true
		if !KnownKey(p.Key) {
			t.Errorf("problem %q: key %q is no key of the configuration", p, p.Key)
		}
		base, _, _ := strings.Cut(p.Key, "[")
		if !strings.Contains(p.Error(), base) {
			t.Errorf("problem %q does not name its key %q", p, base)
		}
		if p.Line != 0 {
			t.Errorf("problem %q: line %d, but nothing came from a file", p, p.Line)
		}
	}
	for _, k := range []string{"name", "groups[0]", "mode", "vni", "mtu", "listen_port", "interface", "policy_max_flows", "cluster_cidr",
		"gossip.allowed_static[0]", "gossip.retry_interval", "gossip.retry_max", "pki.cert", "peers[0]", "log_level", "log_format",
		"dns.listen[0]", "dns.listen[1]", "consul_api.listen[0]", "forward"} {
		if !keys[k] {
			t.Errorf("no problem reported for %s; got %v", k, probs)
		}
	}
}

// TestResolve_LeavesRawAlone: Resolve fills the derived defaults into its result, never into
// the configuration it was given (not even through a shared list).
func TestResolve_LeavesRawAlone(t *testing.T) {
	raw := DefaultConfig()
	raw.Name = "h"
	raw.Netstack = true
	raw.Forward = []ForwardConfig{{Listen: "127.0.0.1:1", To: "a.service.weft:1"}}
	raw.DNS.Domain = "example"
	before := raw
	before.Forward = append([]ForwardConfig(nil), raw.Forward...)
	r, err := Resolve(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(raw, before) {
		t.Fatalf("Resolve changed its argument: %+v", raw)
	}
	if r.ListenPort != 51820 || r.MTU != 1412 || r.Forward[0].Proto != "tcp" || r.DNS.Domain != "example." || r.ConsulAPI.Datacenter != "dc1" {
		t.Fatalf("resolved: port %d mtu %d proto %q domain %q dc %q", r.ListenPort, r.MTU, r.Forward[0].Proto, r.DNS.Domain, r.ConsulAPI.Datacenter)
	}
}

// TestResolve_FlagOverFileLosesTheLine: a value a flag put over the file's is not blamed on
// the file's line.
func TestResolve_FlagOverFileLosesTheLine(t *testing.T) {
	raw := DefaultConfig()
	raw.Name = "h"
	if err := parseConfig([]byte("vni: 0\nmode: l3\ndns:\n  listen: [\"127.0.0.1:53\", \"nowhere\"]\n"), &raw); err != nil {
		t.Fatal(err)
	}
	raw.Mode = "l4" // as --mode l4 would
	probs := Problems(raw.Validate())
	lines := map[string]int{}
	for _, p := range probs {
		lines[p.Key] = p.Line
	}
	if l, ok := lines["mode"]; !ok || l != 0 {
		t.Errorf("mode from a flag: line %d (reported %v), want 0", l, ok)
	}
	if lines["vni"] != 1 || lines["dns.listen[1]"] != 4 {
		t.Errorf("lines = %v, want vni at 1 and dns.listen[1] at 4", lines)
	}
}

// TestCheck_ReportsKeyAndSettings: Check reports the gossip key's problem together with
// Validate's, not after them.
func TestCheck_ReportsKeyAndSettings(t *testing.T) {
	c := DefaultConfig()
	c.Trust = TrustSharedKey // the gossip key must then be configured
	c.VNI = 0
	err := c.Check()
	if err == nil || !strings.Contains(err.Error(), "vni 0") || !strings.Contains(err.Error(), "no gossip key") {
		t.Fatalf("Check = %v, want the vni and the gossip key", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "vni" {
		t.Fatalf("first problem %v, want one of key vni", e)
	}
}

// TestCheckTree_ProblemsHaveKeys: the file's shape problems are *Error values too.
func TestCheckTree_ProblemsHaveKeys(t *testing.T) {
	cfg := DefaultConfig()
	err := parseConfig([]byte("modee: l3\ngossip:\n  retry_max: many\n"), &cfg)
	probs := Problems(err)
	if len(probs) != 2 || probs[0].Key != "modee" || probs[0].Line != 1 || probs[1].Key != "gossip.retry_max" || probs[1].Line != 3 {
		t.Fatalf("problems = %#v", probs)
	}
	if want := "line 3: gossip.retry_max: \"many\" is not a whole number"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestKnownKey(t *testing.T) {
	for k, want := range map[string]bool{"mode": true, "gossip.bind": true, "peers": true, "peers[0]": true, "peers[0].public_key": true,
		"dns.listen[1]": true, "services[2].check.interval": true, "pki.ca": true, "modee": false, "gossip.nope": false, "mode.x": false} {
		if got := KnownKey(k); got != want {
			t.Errorf("KnownKey(%q) = %v, want %v", k, got, want)
		}
	}
}

// TestResolve_SubnetLen: subnet_len, subnet_min/subnet_max and cluster_cidr are checked
// against each other, and an IPv6 cluster range is refused with a clear message; a /20
// cut into /26s with a range inside it is fine.
func TestResolve_SubnetLen(t *testing.T) {
	pf := func(s string) Prefix {
		if s == "" {
			return Prefix{}
		}
		return Prefix{netip.MustParsePrefix(s)}
	}
	for _, tc := range []struct {
		cidr     string
		bits     int
		min, max string
		key      string // "" : no problem
		want     string
	}{
		{"10.42.0.0/20", 26, "10.42.1.0/26", "10.42.2.192/26", "", ""},
		{"10.32.0.0/12", 24, "", "", "", ""},
		{"fd42::/48", 24, "", "", "cluster_cidr", "IPv6 cluster range is not supported yet"},
		{"10.42.0.0/16", 27, "", "", "subnet_len", "subnet_len 27: must be 20 to 26"},
		{"10.42.0.0/16", 19, "", "", "subnet_len", "subnet_len 19"},
		{"10.42.0.0/24", 24, "", "", "cluster_cidr", "must be /8 to /23"},
		{"10.42.0.0/20", 26, "10.42.1.0/24", "", "subnet_min", "must be a /26 (subnet_len) inside cluster_cidr"},
		{"10.42.0.0/20", 26, "", "10.43.0.0/26", "subnet_max", "inside cluster_cidr 10.42.0.0/20"},
		{"10.42.0.0/20", 26, "10.42.1.32/26", "", "subnet_min", "must be a /26"},
		{"10.42.0.0/20", 26, "10.42.2.0/26", "10.42.1.0/26", "subnet_min", "is above subnet_max"},
	} {
		c := DefaultConfig()
		c.Name = "h"
		c.ClusterCIDR, c.SubnetLen, c.SubnetMin, c.SubnetMax = pf(tc.cidr), tc.bits, pf(tc.min), pf(tc.max)
		_, err := Resolve(c)
		var found *Error
		for _, p := range Problems(err) {
			if p.Key == tc.key {
				found = p
			}
			if strings.HasPrefix(p.Key, "subnet") || p.Key == "cluster_cidr" {
				if tc.key == "" {
					t.Errorf("%+v: unexpected problem %q", tc, p)
				}
			}
		}
		if tc.key != "" && (found == nil || !strings.Contains(found.Error(), tc.want)) {
			t.Errorf("%+v: want a problem on %s containing %q, got %v", tc, tc.key, tc.want, err)
		}
	}
}

func TestResolve_CatalogLimits(t *testing.T) {
	for _, tc := range []struct {
		services, bytes int
		key, want       string
	}{
		{1000, 65536, "", ""},
		{1, 1024, "", ""},
		{0, 65536, "catalog.max_services", "catalog.max_services 0: must be 1 to 100000"},
		{100_001, 65536, "catalog.max_services", "must be 1 to 100000"},
		{1000, 1000, "catalog.max_bytes", "catalog.max_bytes 1000: must be 1024 to 1048576"},
		{1000, 2 << 20, "catalog.max_bytes", "must be 1024 to 1048576"},
	} {
		c := DefaultConfig()
		c.Name = "h"
		c.Catalog = CatalogLimits{MaxServices: tc.services, MaxBytes: tc.bytes}
		_, err := Resolve(c)
		var found *Error
		for _, p := range Problems(err) {
			if p.Key == tc.key {
				found = p
			} else if strings.HasPrefix(p.Key, "catalog.") {
				t.Errorf("%+v: unexpected problem %q", tc, p)
			}
		}
		if tc.key != "" && (found == nil || !strings.Contains(found.Error(), tc.want)) {
			t.Errorf("%+v: want a problem on %s containing %q, got %v", tc, tc.key, tc.want, err)
		}
	}
}
