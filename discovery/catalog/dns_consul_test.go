package catalog

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func consulDNSFixture(t *testing.T) *dnsFixture {
	return newDNSFixture(t, DNSConfig{ConsulAlias: true,
		Reverse: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("fd00::/64")}})
}

func TestDNSServer_ConsulNames(t *testing.T) {
	f := consulDNSFixture(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		// RFC 2782 with a tag: only the tagged, passing instances.
		{"_web._canary.service.weft.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 1 5 8080 host-b.node.weft."}},
		{"_web._primary.service.weft.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 1 10 8080 host-a.node.weft."}},
		{"_web._canary.service.weft.", dns.TypeA, dns.RcodeSuccess, nil}, // SRV-only name: NODATA
		{"_web._nosuch.service.weft.", dns.TypeSRV, dns.RcodeNameError, nil},
		{"_db._tcp.service.weft.", dns.TypeSRV, dns.RcodeNameError, nil}, // no passing db
		// The consul alias zone, names rewritten back.
		{"web.service.consul.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.1.1", "A 10.42.2.1"}},
		{"primary.web.service.consul.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.1.1"}},
		{"_web._canary.service.consul.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 1 5 8080 host-b.node.consul."}},
		{"host-c.node.consul.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.3.1"}},
		{"nosuch.service.consul.", dns.TypeA, dns.RcodeNameError, nil},
		// PTR: the member first, then its services.
		{"1.1.42.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR host-a.node.weft.", "PTR web.service.weft."}},
		{"1.6.42.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR f.lan.node.weft."}},
		{"9.9.42.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil},
		{"1.1.42.10.in-addr.arpa.", dns.TypeA, dns.RcodeSuccess, nil},
		{reverseName(netip.MustParseAddr("fd00::4")), dns.TypePTR, dns.RcodeSuccess, []string{"PTR host-d.node.weft.", "PTR web.service.weft."}},
		{"1.1.42.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR host-a.node.weft.", "PTR web.service.weft."}},
		// Outside the reverse prefixes: refused as any foreign name (no upstream here).
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, nil},
		{"42.10.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, nil},
	} {
		for _, netw := range []string{"udp", "tcp"} {
			r := f.query(t, netw, tc.name, tc.qtype)
			var got []string
			for _, rr := range r.Answer {
				if p, ok := rr.(*dns.PTR); ok {
					got = append(got, "PTR "+p.Ptr)
				} else {
					got = append(got, answerSet([]dns.RR{rr})...)
				}
				if !strings.EqualFold(rr.Header().Name, tc.name) {
					t.Errorf("%s: answer owner %s", tc.name, rr.Header().Name)
				}
			}
			if !strings.HasPrefix(tc.name, "1.1.42") && !strings.Contains(tc.name, "ip6") {
				slices.Sort(got)
			}
			if r.Rcode != tc.rcode || !slices.Equal(got, tc.want) {
				t.Errorf("%s %s %s: %s %v; want %s %v", netw, tc.name, dns.TypeToString[tc.qtype],
					dns.RcodeToString[r.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
			}
			if tc.rcode == dns.RcodeNameError && strings.HasSuffix(tc.name, "consul.") {
				if len(r.Ns) != 1 || r.Ns[0].Header().Name != "consul." {
					t.Errorf("%s: authority %v; want the consul. SOA", tc.name, r.Ns)
				}
			}
		}
	}
	// The SRV targets' addresses are in the additional section, renamed too.
	r := f.query(t, "udp", "_web._canary.service.consul.", dns.TypeSRV)
	if got := answerSet(r.Extra); !slices.Equal(got, []string{"A 10.42.2.1"}) || r.Extra[0].Header().Name != "host-b.node.consul." {
		t.Errorf("extra: %v", r.Extra)
	}
}

func TestDNSServer_ConsulAliasOff(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	if r := f.query(t, "udp", "web.service.consul.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Fatalf("consul. without the alias: %s", dns.RcodeToString[r.Rcode])
	}
	if r := f.query(t, "udp", "1.1.42.10.in-addr.arpa.", dns.TypePTR); r.Rcode != dns.RcodeRefused {
		t.Fatalf("PTR without reverse prefixes: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestReverseAddr(t *testing.T) {
	for _, a := range []string{"10.42.1.1", "0.0.0.0", "255.255.255.255", "fd00::4", "2001:db8::abcd:1"} {
		addr := netip.MustParseAddr(a)
		got, ok := reverseAddr(reverseName(addr))
		if !ok || got != addr {
			t.Errorf("%s → %s → %v %v", a, reverseName(addr), got, ok)
		}
	}
	for _, n := range []string{"1.42.10.in-addr.arpa.", "256.1.42.10.in-addr.arpa.", "01.1.42.10.in-addr.arpa.",
		"a.1.42.10.in-addr.arpa.", "-1.1.42.10.in-addr.arpa.", "4.0.0.ip6.arpa.", "x.in-addr.arpa.", "1.1.42.10.in-addr.arpa"} {
		if a, ok := reverseAddr(n); ok {
			t.Errorf("%q parsed as %v", n, a)
		}
	}
}

// FuzzReverseAddr: no name panics; what parses round-trips through reverseName.
func FuzzReverseAddr(f *testing.F) {
	f.Add("1.1.42.10.in-addr.arpa.")
	f.Add(reverseName(netip.MustParseAddr("fd00::4")))
	f.Fuzz(func(t *testing.T, name string) {
		a, ok := reverseAddr(name)
		if !ok {
			return
		}
		if back, ok := reverseAddr(reverseName(a)); !ok || back != a {
			t.Fatalf("%q → %v → %q → %v", name, a, reverseName(a), back)
		}
	})
}
