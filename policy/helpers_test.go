package policy

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
)

// fakeResolver is a map-backed Resolver: the catalog and membership of a test cluster.
type fakeResolver struct {
	eps  map[netip.Addr]Endpoint
	svcs map[string][]Instance
}

var _ Resolver = (*fakeResolver)(nil)

func (r *fakeResolver) Endpoint(a netip.Addr) (Endpoint, bool) {
	e, ok := r.eps[a]
	return e, ok
}

func (r *fakeResolver) Service(name string) []Instance { return r.svcs[name] }

var (
	web1  = netip.MustParseAddr("10.42.1.1")
	web2  = netip.MustParseAddr("10.42.1.2")
	db1   = netip.MustParseAddr("10.42.2.1")
	mon1  = netip.MustParseAddr("10.42.3.1")
	none1 = netip.MustParseAddr("10.42.4.1")
	ext1  = netip.MustParseAddr("192.168.7.5")
	web6  = netip.MustParseAddr("fd42::1:1")
	db6   = netip.MustParseAddr("fd42::2:1")

	idWeb1  = Endpoint{Host: "web1", Groups: []string{"web"}}
	idWeb2  = Endpoint{Host: "web2", Groups: []string{"web", "canary"}}
	idDB1   = Endpoint{Host: "db1", Groups: []string{"db"}}
	idMon1  = Endpoint{Host: "mon1", Groups: []string{"monitoring"}}
	idNone1 = Endpoint{Host: "none1"}
)

func cluster() *fakeResolver {
	return &fakeResolver{
		eps: map[netip.Addr]Endpoint{
			web1: idWeb1, web2: idWeb2, db1: idDB1, mon1: idMon1, none1: idNone1,
			web6: idWeb1, db6: idDB1,
		},
		svcs: map[string][]Instance{
			"db":  {{Addr: db1, Port: 5432, Proto: ProtoTCP}, {Addr: db6, Port: 5432, Proto: ProtoTCP}},
			"dns": {{Addr: mon1, Port: 53, Proto: ProtoUDP}, {Addr: mon1, Port: 53, Proto: ProtoTCP}},
		},
	}
}

// issueExample is the document of issue 11, with names.
const issueExample = `
version: 3
default: deny
rules:
  - name: web-db
    from: {groups: [web]}
    to:   {services: [db]}
  - name: scrape
    from: {cidrs: [10.42.0.0/16]}
    to:   {groups: [monitoring], ports: ["9100/tcp"]}
  - name: ping
    from: {any: true}
    to:   {any: true, proto: icmp}
`

func mustCompile(t testing.TB, doc string, r Resolver) *Set {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s, err := Compile(d, r)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func newEngine(t testing.TB, cfg Config, s *Set) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Load(s)
	return e
}

func tcpPkt(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	return testkit.TCP(netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport), flags, nil)
}

func udpPkt(src, dst netip.Addr, sport, dport uint16) []byte {
	return testkit.UDP(netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport), make([]byte, 4))
}

// icmpEcho builds an echo request (reply false) or reply.
func icmpEcho(src, dst netip.Addr, id uint16, reply bool) []byte {
	return testkit.ICMPEcho(src, dst, id, 0, reply, nil)
}

// fragment4 sets an IPv4 packet's fragment fields (offset in bytes).
func fragment4(p []byte, id uint16, offset int, more bool) []byte {
	binary.BigEndian.PutUint16(p[4:6], id)
	v := uint16(offset / 8)
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:8], v)
	return p
}

const (
	syn    = tcpSYN
	synack = tcpSYN | tcpACK
	ack    = tcpACK
	rst    = tcpRST
	fin    = tcpFIN | tcpACK
)

const second = int64(1e9)
