package catalog

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsFixture is a catalog with a few nodes and a running DNS server on 127.0.0.1:0.
type dnsFixture struct {
	cat  *Catalog
	srv  *DNSServer
	addr string
}

func newDNSFixture(t *testing.T, cfg DNSConfig) *dnsFixture {
	t.Helper()
	cat, _ := newTestCatalog(t, CatalogConfig{Node: "host-a", Addr: netip.MustParseAddr("10.42.1.1")})
	if err := cat.Register(Service{Name: "web", Port: 8080, Tags: []string{"primary"}, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	for node, v := range map[string]struct{ addr, tag string }{
		"host-b": {"10.42.2.1", "1;db:5432:c;web:8080::canary:5"},
		"host-c": {"10.42.3.1", "1;web:8081:c"},
		"host-d": {"fd00::4", "1;web:8080"},
		"host-e": {"10.42.5.1", "1;db:5432:w"},
		"f.lan":  {"10.42.6.1", ""},
	} {
		if err := cat.UpdateNode(node, netip.MustParseAddr(v.addr), v.tag); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Domain == "" {
		cfg.Domain = "weft"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	cfg.Logger = testLogger(t)
	srv, err := NewDNSServer(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &dnsFixture{cat: cat, srv: srv, addr: srv.Addrs()[0].String()}
}

func (f *dnsFixture) query(t *testing.T, netw, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, f.addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", netw, name, dns.TypeToString[qtype], err)
	}
	return r
}

// answerSet renders the answer (or extra) section as sorted "TYPE value" strings.
func answerSet(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, "A "+r.A.String())
		case *dns.AAAA:
			out = append(out, "AAAA "+r.AAAA.String())
		case *dns.SRV:
			out = append(out, fmt.Sprintf("SRV %d %d %d %s", r.Priority, r.Weight, r.Port, r.Target))
		case *dns.SOA:
			out = append(out, "SOA "+r.Ns)
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestDNSServer_Answers(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
		soa    bool // SOA in the authority section
	}{
		{"web.service.weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.1.1", "A 10.42.2.1"}, nil, false},
		{"WEB.Service.Weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.1.1", "A 10.42.2.1"}, nil, false},
		{"web.service.weft.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::4"}, nil, false},
		{"web.service.weft.", dns.TypeANY, dns.RcodeSuccess, []string{"A 10.42.1.1", "A 10.42.2.1", "AAAA fd00::4"}, nil, false},
		{"_web._tcp.service.weft.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 1 1 8080 host-d.node.weft.", "SRV 1 10 8080 host-a.node.weft.", "SRV 1 5 8080 host-b.node.weft."},
			[]string{"A 10.42.1.1", "A 10.42.2.1", "AAAA fd00::4"}, false},
		{"web.service.weft.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"SRV 1 1 8080 host-d.node.weft.", "SRV 1 10 8080 host-a.node.weft.", "SRV 1 5 8080 host-b.node.weft."},
			[]string{"A 10.42.1.1", "A 10.42.2.1", "AAAA fd00::4"}, false},
		{"_web._tcp.service.weft.", dns.TypeA, dns.RcodeSuccess, nil, nil, true},
		{"canary.web.service.weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.2.1"}, nil, false},
		{"primary.web.service.weft.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 1 10 8080 host-a.node.weft."}, []string{"A 10.42.1.1"}, false},
		{"nosuchtag.web.service.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"web.service.weft.", dns.TypeTXT, dns.RcodeSuccess, nil, nil, true},
		{"host-b.node.weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.2.1"}, nil, false},
		{"host-a.node.weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.1.1"}, nil, false},
		{"host-d.node.weft.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::4"}, nil, false},
		{"host-b.node.weft.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, true},
		{"f.lan.node.weft.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.42.6.1"}, nil, false},
		{"weft.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA ns.weft."}, nil, false},
		{"weft.", dns.TypeA, dns.RcodeSuccess, nil, nil, true},
		// Negative answers.
		{"db.service.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true}, // critical and warning only
		{"nosuch.service.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"_nosuch._tcp.service.weft.", dns.TypeSRV, dns.RcodeNameError, nil, nil, true},
		{"_web._udp.service.weft.", dns.TypeSRV, dns.RcodeNameError, nil, nil, true},
		{"nosuch.node.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"service.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"x.y.z.service.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"random.weft.", dns.TypeA, dns.RcodeNameError, nil, nil, true},
		{"example.com.", dns.TypeA, dns.RcodeRefused, nil, nil, false},
		{"weft.example.", dns.TypeA, dns.RcodeRefused, nil, nil, false},
	}
	for _, netw := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(netw+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				r := f.query(t, netw, tt.name, tt.qtype)
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], r)
				}
				if got := answerSet(r.Answer); !slices.Equal(got, tt.answer) {
					t.Fatalf("answer %q, want %q", got, tt.answer)
				}
				if got := answerSet(r.Extra); !slices.Equal(got, tt.extra) {
					t.Fatalf("extra %q, want %q", got, tt.extra)
				}
				if got := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; got != tt.soa {
					t.Fatalf("SOA in authority: %v, want %v\n%v", got, tt.soa, r)
				}
				if tt.rcode != dns.RcodeRefused && !r.Authoritative {
					t.Fatal("answer not authoritative")
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 5 {
						t.Fatalf("ttl %d", rr.Header().Ttl)
					}
				}
			})
		}
	}
}

func TestDNSServer_HealthChangesAnswers(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	if got := answerSet(f.query(t, "udp", "web.service.weft.", dns.TypeA).Answer); len(got) != 2 {
		t.Fatalf("%q", got)
	}
	f.cat.UpdateNode("host-b", netip.MustParseAddr("10.42.2.1"), "1;web:8080:c")
	if got := answerSet(f.query(t, "udp", "web.service.weft.", dns.TypeA).Answer); !slices.Equal(got, []string{"A 10.42.1.1"}) {
		t.Fatalf("after host-b turned critical: %q", got)
	}
	f.cat.RemoveNode("host-b")
	if r := f.query(t, "udp", "host-b.node.weft.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("removed node: %v", r)
	}
	soa := f.query(t, "udp", "weft.", dns.TypeSOA).Answer[0].(*dns.SOA)
	if soa.Serial != uint32(f.cat.Index()) {
		t.Fatalf("serial %d, index %d", soa.Serial, f.cat.Index())
	}
}

func TestDNSServer_Shuffle(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	for i := range 8 {
		f.cat.UpdateNode(fmt.Sprintf("n%d", i), netip.AddrFrom4([4]byte{10, 42, 10, byte(i)}), "1;many:80")
	}
	orders := make(map[string]bool)
	for range 30 {
		r := f.query(t, "udp", "many.service.weft.", dns.TypeA)
		var order []string
		for _, rr := range r.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		if len(order) != 8 {
			t.Fatalf("%d answers", len(order))
		}
		orders[strings.Join(order, ",")] = true
	}
	if len(orders) < 2 {
		t.Fatal("30 answers came in the same order")
	}
}

func TestDNSServer_Truncate(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	for i := range 60 {
		f.cat.UpdateNode(fmt.Sprintf("node-with-a-long-name-%02d", i), netip.AddrFrom4([4]byte{10, 42, 20, byte(i)}), "1;big:80")
	}
	udp := f.query(t, "udp", "_big._tcp.service.weft.", dns.TypeSRV)
	if !udp.Truncated || len(udp.Answer) >= 60 {
		t.Fatalf("udp: truncated %v with %d answers", udp.Truncated, len(udp.Answer))
	}
	tcp := f.query(t, "tcp", "_big._tcp.service.weft.", dns.TypeSRV)
	if tcp.Truncated || len(tcp.Answer) != 60 || len(tcp.Extra) != 60 {
		t.Fatalf("tcp: truncated %v with %d answers, %d extra", tcp.Truncated, len(tcp.Answer), len(tcp.Extra))
	}
}

func TestDNSServer_Upstream(t *testing.T) {
	// A stand-in upstream resolver.
	up, err := NewDNSServer(DNSConfig{Listen: []string{"127.0.0.1:0"}, Domain: "example."}, staticSource{})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Shutdown(context.Background())
	f := newDNSFixture(t, DNSConfig{Upstream: up.Addrs()[0].String()})
	for _, netw := range []string{"udp", "tcp"} {
		r := f.query(t, netw, "h.node.example.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answerSet(r.Answer), []string{"A 192.0.2.7"}) {
			t.Fatalf("%s forwarded: %v", netw, r)
		}
	}
	if r := f.query(t, "udp", "web.service.weft.", dns.TypeA); !r.RecursionAvailable || len(r.Answer) != 2 {
		t.Fatalf("local answer with upstream: %v", r)
	}

	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close() // never answers
	g := newDNSFixture(t, DNSConfig{Upstream: dead.LocalAddr().String(), UpstreamTimeout: 100 * time.Millisecond})
	if r := g.query(t, "udp", "example.org.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("dead upstream: %v", r)
	}
}

// staticSource answers one node.
type staticSource struct{}

func (staticSource) Instances(string, bool) []Instance { return nil }
func (staticSource) Index() uint64                     { return 1 }
func (staticSource) NodeAddr(n string) (netip.Addr, bool) {
	return netip.MustParseAddr("192.0.2.7"), n == "h"
}

func TestDNSServer_Malformed(t *testing.T) {
	f := newDNSFixture(t, DNSConfig{})
	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("web.service.weft.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	if r, _, err := c.Exchange(m, f.addr); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("two questions: %v %v", r, err)
	}
	m = new(dns.Msg)
	m.SetNotify("weft.")
	if r, _, err := c.Exchange(m, f.addr); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("notify: %v %v", r, err)
	}
	m = new(dns.Msg)
	m.SetQuestion("web.service.weft.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r, _, err := c.Exchange(m, f.addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Fatalf("chaos class: %v %v", r, err)
	}
}

func TestDNSServer_StartShutdown(t *testing.T) {
	cat, _ := newTestCatalog(t, CatalogConfig{})
	for _, cfg := range []DNSConfig{
		{Listen: []string{"127.0.0.1:0"}, Domain: "."},
		{Listen: nil, Domain: "weft."},
		{Listen: []string{"127.0.0.1:0"}, Domain: "weft.", Upstream: "no-port"},
		{Listen: []string{"127.0.0.1:0"}, Domain: "weft.", TTL: -1},
	} {
		if _, err := NewDNSServer(cfg, cat); err == nil {
			t.Errorf("NewDNSServer(%+v) accepted", cfg)
		}
	}
	// Two listen addresses when the host has an IPv6 loopback (probed first, so that any
	// Start error below is the server's fault), else one: the rest of the test holds either way.
	listen := []string{"127.0.0.1:0", "[::1]:0"}
	if pc, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback (%v): listening on 127.0.0.1 only", err)
		listen = listen[:1]
	} else {
		pc.Close()
	}
	s, err := NewDNSServer(DNSConfig{Listen: listen, Domain: "weft."}, cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start on %v: %v", listen, err)
	}
	addrs := s.Addrs()
	if len(addrs) != len(listen) || addrs[0].Port() == 0 {
		t.Fatalf("addrs %v", addrs)
	}
	// The same port is bound on TCP.
	conn, err := net.Dial("tcp", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := s.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	// A busy address fails Start and leaves nothing bound.
	busy, err := NewDNSServer(DNSConfig{Listen: []string{"127.0.0.1:0", addrs[0].String()}, Domain: "weft."}, cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Start(); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", addrs[0].String()); err == nil {
		conn.Close()
		t.Fatal("still listening after Shutdown")
	}
}
