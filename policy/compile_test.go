package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSet_Test(t *testing.T) {
	// Issue 11's example (rules 0-2) and four rules after it (3-6).
	const rules = issueExample + `  - name: canary-deny
    action: deny
    from: {groups: [canary]}
    to:   {hosts: [mon1]}
  - name: web-mon-range
    from: {groups: [web]}
    to:   {hosts: [mon1], ports: ["8000-8100/udp", "53"]}
  - name: ext-ssh
    from: {cidrs: [192.168.0.0/16, fd00::/8]}
    to:   {hosts: [db1], proto: tcp, ports: ["22"]}
  - name: dns-clients
    from: {services: [db]}
    to:   {services: [dns]}
`
	s := mustCompile(t, rules, cluster())
	tests := []struct {
		name     string
		from, to netip.Addr
		port     uint16
		proto    Proto
		allow    bool
		rule     int32
	}{
		{"group to service port", web1, db1, 5432, ProtoTCP, true, 0},
		{"group to service over v6", web6, db6, 5432, ProtoTCP, true, 0},
		{"group to service, wrong port", web1, db1, 22, ProtoTCP, false, -1},
		{"group to service, wrong proto", web1, db1, 5432, ProtoUDP, false, -1},
		{"not in group", none1, db1, 5432, ProtoTCP, false, -1},
		{"cidr to group port", none1, mon1, 9100, ProtoTCP, true, 1},
		{"cidr outside", ext1, mon1, 9100, ProtoTCP, false, -1},
		{"cidr to group, udp", none1, mon1, 9100, ProtoUDP, false, -1},
		{"icmp from anyone", ext1, db1, 0, ProtoICMP, true, 2},
		// Rule order: the canary deny comes before the web range allow, web2 is in both
		// web and canary.
		{"deny rule before allow", web2, mon1, 8050, ProtoUDP, false, 3},
		{"port range low edge", web1, mon1, 8000, ProtoUDP, true, 4},
		{"port range high edge", web1, mon1, 8100, ProtoUDP, true, 4},
		{"port range outside", web1, mon1, 8101, ProtoUDP, false, -1},
		{"range is udp only", web1, mon1, 8050, ProtoTCP, false, -1},
		{"bare port is tcp and udp (tcp)", web1, mon1, 53, ProtoTCP, true, 4},
		{"bare port is tcp and udp (udp)", web1, mon1, 53, ProtoUDP, true, 4},
		{"host selector", ext1, db1, 22, ProtoTCP, true, 5},
		{"host selector, other host", ext1, mon1, 22, ProtoTCP, false, -1},
		{"from services", db1, mon1, 53, ProtoUDP, true, 6},
		{"from services, not an instance", web1, mon1, 54, ProtoUDP, false, -1},
		{"other protocol", web1, db1, 0, ProtoOther, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := s.Test(tt.from, tt.to, tt.port, tt.proto)
			if v.Allowed() != tt.allow || v.Rule != tt.rule {
				t.Fatalf("Test(%v → %v %d/%v) = %+v (%s), want allow=%v rule=%d", tt.from, tt.to, tt.port, tt.proto, v, s.Explain(v), tt.allow, tt.rule)
			}
			if !tt.allow && v.Reason != ReasonPolicyDenied {
				t.Fatalf("denied with reason %v", v.Reason)
			}
		})
	}
}

func TestSet_DefaultAllow(t *testing.T) {
	for _, doc := range []string{"", "default: allow\n", "rules: [{action: deny, from: {groups: [web]}, to: {any: true, ports: [\"22\"]}}]"} {
		s := mustCompile(t, doc, cluster())
		if v := s.Test(none1, db1, 22, ProtoTCP); v.Decision != AllowedByDefault || v.Rule != -1 {
			t.Errorf("%q: none1→db1:22 = %+v, want allowed by default", doc, v)
		}
	}
	s := mustCompile(t, "rules: [{action: deny, from: {groups: [web]}, to: {any: true, ports: [\"22\"]}}]", cluster())
	if v := s.Test(web1, db1, 22, ProtoTCP); v.Allowed() || v.Rule != 0 {
		t.Errorf("deny rule under default allow: %+v", v)
	}
}

func TestSet_ExplainAndStats(t *testing.T) {
	s := mustCompile(t, issueExample, cluster())
	if got := s.Explain(s.Test(web1, db1, 5432, ProtoTCP)); got != `allow by rule 0 "web-db"` {
		t.Errorf("Explain = %q", got)
	}
	if got := s.Explain(s.Test(web1, db1, 22, ProtoTCP)); got != `deny by default (default: deny)` {
		t.Errorf("Explain = %q", got)
	}
	for _, c := range []struct {
		v    Verdict
		want string
	}{
		{Verdict{Decision: AllowedByFlow, Rule: 0}, `allow by rule 0 "web-db" (established flow)`},
		{Verdict{Decision: AllowedByFlow, Rule: -1}, `allow by an established flow`},
		{Verdict{Decision: Denied, Rule: -1, Reason: ReasonMalformed}, `deny: policy_malformed`},
		{Verdict{Decision: Denied, Rule: 2, Reason: ReasonPolicyDenied}, `deny by rule 2 "ping"`},
	} {
		if got := s.Explain(c.v); got != c.want {
			t.Errorf("Explain(%+v) = %q, want %q", c.v, got, c.want)
		}
	}
	st := s.Stats()
	if len(st) != 4 || st[3].Index != -1 || st[3].Action != ActionDeny {
		t.Fatalf("Stats = %+v", st)
	}
	if st[1].Rule != "from cidrs=10.42.0.0/16 to groups=monitoring ports=9100/tcp" {
		t.Errorf("rule 1 described as %q", st[1].Rule)
	}
	// Test touches no counter.
	for _, r := range st {
		if r.Hits != 0 || r.Drops != 0 {
			t.Errorf("Test counted: %+v", r)
		}
	}
}

func TestSet_RebindFollowsCatalog(t *testing.T) {
	r := cluster()
	s := mustCompile(t, issueExample, r)
	if !s.Test(web1, db1, 5432, ProtoTCP).Allowed() {
		t.Fatal("db not reachable before the move")
	}
	// The db service moves to another host and port.
	r.svcs["db"] = []Instance{{Addr: mon1, Port: 6432, Proto: ProtoTCP}}
	if !s.Test(web1, db1, 5432, ProtoTCP).Allowed() {
		t.Fatal("the old Set changed under its readers")
	}
	n := s.Rebind()
	if n.gen == s.gen {
		t.Fatal("Rebind kept the generation")
	}
	if n.Test(web1, db1, 5432, ProtoTCP).Allowed() {
		t.Fatal("old instance still allowed after Rebind")
	}
	if !n.Test(web1, mon1, 6432, ProtoTCP).Allowed() {
		t.Fatal("new instance not allowed after Rebind")
	}
	if n.counters != s.counters {
		t.Fatal("Rebind did not share the counters")
	}
}

func TestCompile_NilResolver(t *testing.T) {
	if _, err := Compile(&Document{}, nil); err == nil || !strings.Contains(err.Error(), "nil Resolver") {
		t.Fatalf("Compile(nil resolver) = %v", err)
	}
}
