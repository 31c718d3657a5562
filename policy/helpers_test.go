package policy

import (
	"encoding/binary"
	"net/netip"
	"testing"
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

// ipPacket wraps l4 in an IPv4 or IPv6 header (by the family of src).
func ipPacket(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	if src.Is4() {
		p := make([]byte, 20+len(l4))
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
		p[8] = 64
		p[9] = proto
		s, d := src.As4(), dst.As4()
		copy(p[12:16], s[:])
		copy(p[16:20], d[:])
		copy(p[20:], l4)
		return p
	}
	p := make([]byte, 40+len(l4))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(l4)))
	p[6] = proto
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	copy(p[40:], l4)
	return p
}

func tcpPkt(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	l4[12] = 5 << 4
	l4[13] = flags
	return ipPacket(src, dst, ipProtoTCP, l4)
}

func udpPkt(src, dst netip.Addr, sport, dport uint16) []byte {
	l4 := make([]byte, 8+4)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
	return ipPacket(src, dst, ipProtoUDP, l4)
}

// icmpEcho builds an echo request (reply false) or reply.
func icmpEcho(src, dst netip.Addr, id uint16, reply bool) []byte {
	l4 := make([]byte, 8)
	proto := uint8(ipProtoICMP)
	typ := uint8(8)
	if reply {
		typ = 0
	}
	if src.Is6() {
		proto, typ = ipProtoICMPv6, 128
		if reply {
			typ = 129
		}
	}
	l4[0] = typ
	binary.BigEndian.PutUint16(l4[4:6], id)
	return ipPacket(src, dst, proto, l4)
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
