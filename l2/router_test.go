package l2

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// testPeers returns a peer table with peers 1, 2, 3 allowed 10.42.N.0/24 (and p3 also
// fd00:3::/64), as the agent gives each L2 peer its subnet.
func testPeers(t testing.TB) (*peers.Table, *peers.Peer, *peers.Peer, *peers.Peer) {
	t.Helper()
	id := cryptotest.NewIdentity(t)
	tb := peers.NewTable(id)
	var ps [3]*peers.Peer
	for i := range ps {
		allowed := []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 42, byte(i + 1), 0}), 24)}
		if i == 2 {
			allowed = append(allowed, netip.MustParsePrefix("fd00:3::/64"))
		}
		p, err := tb.Upsert(peers.PeerConfig{PublicKey: crypto.PublicKey{byte(i + 1)}, AllowedIPs: allowed})
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return tb, ps[0], ps[1], ps[2]
}

// testIPv4 is a 20-byte IPv4 header (protocol UDP) from src to dst followed by payload.
func testIPv4(src, dst string, payload []byte) []byte {
	return testkit.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), testkit.ProtoUDP, payload)
}

// testIPv6 is an IPv6 header (hop limit 255, as NDP's) from src to dst with next header
// next followed by payload.
func testIPv6(src, dst string, next byte, payload []byte) []byte {
	return testkit.SetTTL(testkit.IPv6(netip.MustParseAddr(src), netip.MustParseAddr(dst), next, payload), 255)
}

// testNDP is an ICMPv6 neighbour solicitation/advertisement (typ 135/136) for target with
// one link-layer address option (type opt, 0: none) carrying mac.
func testNDP(typ byte, target string, opt byte, mac MAC) []byte {
	m := make([]byte, 24)
	m[0] = typ
	tg := netip.MustParseAddr(target).As16()
	copy(m[8:], tg[:])
	if opt != 0 {
		m = append(m, opt, 1)
		m = append(m, mac[:]...)
	}
	return m
}

// testARP is an ARP packet (op) from smac/sip about tip.
func testARP(op uint16, smac MAC, sip, tip string) []byte {
	p := testARPRequest(smac, sip, tip)
	binary.BigEndian.PutUint16(p[6:], op)
	return p
}

func eui64LinkLocal(mac MAC) string {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10], a[11], a[12] = mac[0]^0x02, mac[1], mac[2], 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a).String()
}

func TestL2Router_RouteAccept(t *testing.T) {
	tb, p1, p2, p3 := testPeers(t)
	now := time.Unix(1_000_000, 0)
	r := NewRouter(42, FDBConfig{Now: func() time.Time { return now }}, tb)
	dst := make([]*peers.Peer, 0, 8)
	ip := func(src string) []byte { return testIPv4(src, "10.42.9.9", nil) }

	if _, why := r.Route(make([]byte, 13), dst); why != peers.DropMalformed {
		t.Fatalf("short frame: %v", why)
	}
	if _, why := r.Route(testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, nil), dst); why != peers.DropNoRoute {
		t.Fatalf("no peers: %v", why)
	}
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	r.FDB().AddRemote(p3)
	r.FDB().SetStatic(testMACC, p3) // p3's TAP MAC, from gossip

	// Learning from inbound frames.
	if why := r.Accept(p1, testkit.Ethernet(testMACC, testMACA, nil, EtherTypeIPv4, ip("10.42.1.5"))); why != peers.DropNone {
		t.Fatalf("accept: %v", why)
	}
	tests := []struct {
		name string
		dst  MAC
		want []*peers.Peer
	}{
		{"learned unicast", testMACA, []*peers.Peer{p1}},
		{"static unicast", testMACC, []*peers.Peer{p3}},
		{"unknown unicast floods", testMACB, []*peers.Peer{p1, p2, p3}},
		{"broadcast floods", BroadcastMAC, []*peers.Peer{p1, p2, p3}},
	}
	for _, tt := range tests {
		got, why := r.Route(testkit.Ethernet(tt.dst, testMACB, nil, EtherTypeIPv4, nil), dst[:0])
		if why != peers.DropNone || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Route = %v, %v", tt.name, got, why)
		}
	}

	inbound := []struct {
		name    string
		src     *peers.Peer
		pkt     []byte
		advance time.Duration
		want    peers.DropReason
	}{
		{"short", p1, make([]byte, 10), 0, peers.DropMalformed},
		{"multicast source", p1, testkit.Ethernet(testMACA, BroadcastMAC, nil, EtherTypeIPv4, ip("10.42.1.5")), 0, peers.DropMalformed},
		{"spoofed static MAC", p1, testkit.Ethernet(testMACA, testMACC, nil, EtherTypeIPv4, ip("10.42.1.5")), 0, peers.DropNotAllowedSource},
		{"owner of static MAC", p3, testkit.Ethernet(testMACA, testMACC, nil, EtherTypeIPv4, ip("10.42.3.5")), 0, peers.DropNone},
		// p2 claims the MAC that p1 used a second ago: in use, it does not move.
		{"learned MAC in use does not move", p2, testkit.Ethernet(testMACC, testMACA, nil, EtherTypeIPv4, ip("10.42.2.5")), time.Second, peers.DropNotAllowedSource},
		// Quiet at p1 for longer than the hold (a migrated VM): it moves.
		{"quiet learned MAC moves", p2, testkit.Ethernet(testMACC, testMACA, nil, EtherTypeIPv4, ip("10.42.2.5")), DefaultMoveHold, peers.DropNone},
		{"static MAC never moves", p1, testkit.Ethernet(testMACA, testMACC, nil, EtherTypeIPv4, ip("10.42.1.5")), 2 * DefaultMoveHold, peers.DropNotAllowedSource},
	}
	for _, tt := range inbound {
		now = now.Add(tt.advance)
		if why := r.Accept(tt.src, tt.pkt); why != tt.want {
			t.Errorf("%s: Accept = %v, want %v", tt.name, why, tt.want)
		}
	}
	if s := r.FDB().Stats(); s.MovesRefused != 1 || s.Moved != 1 || s.StaticConflicts != 2 {
		t.Errorf("moves refused %d, moved %d, static conflicts %d; want 1, 1, 2", s.MovesRefused, s.Moved, s.StaticConflicts)
	}
	if got, _ := r.Route(testkit.Ethernet(testMACA, testMACB, nil, EtherTypeIPv4, nil), dst[:0]); !slices.Equal(got, []*peers.Peer{p2}) {
		t.Fatalf("after move: %v", got)
	}
	r.FDB().RemoveRemote(p2)
	if got, _ := r.Route(testkit.Ethernet(testMACA, testMACB, nil, EtherTypeIPv4, nil), dst[:0]); !slices.Equal(got, []*peers.Peer{p1, p3}) {
		t.Fatalf("after removing the peer: %v", got)
	}
}

// TestL2Router_CryptokeyRouting: a hostile peer (p1, allowed 10.42.1.0/24, TAP MAC A) tries
// to speak for addresses of p2 (10.42.2.0/24, MAC B) and p3 (fd00:3::/64), and for this host
// (MAC own). Each attempt is DropNotAllowedSource and teaches the FDB nothing; what is its own
// passes.
func TestL2Router_CryptokeyRouting(t *testing.T) {
	tb, p1, _, p3 := testPeers(t)
	own := MAC{0x02, 0, 0, 0, 0, 0xee}
	llA, llB := eui64LinkLocal(testMACA), eui64LinkLocal(testMACB)
	ns := byte(ndpNeighborSolicit)
	na := byte(ndpNeighborAdvert)
	ipv6 := func(src string, next byte, payload []byte) []byte {
		return testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(src, "ff02::1", next, payload))
	}
	icmp := func(src string, m []byte) []byte { return ipv6(src, ipProtoICMPv6, m) }
	// A destination options header (8 bytes, next: ICMPv6) in front of an NDP message.
	dstOpts := func(m []byte) []byte { return append([]byte{ipProtoICMPv6, 0, 1, 4, 0, 0, 0, 0}, m...) }
	frag := func(m []byte) []byte { return append([]byte{ipProtoICMPv6, 0, 0, 1, 0, 0, 0, 1}, m...) }
	v4 := func(vlans []uint16, src string) []byte {
		return testkit.Ethernet(testMACB, testMACA, vlans, EtherTypeIPv4, testIPv4(src, "10.42.2.7", make([]byte, 8)))
	}
	arp := func(smac MAC, sip, tip string) []byte {
		return testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARP(ARPReply, smac, sip, tip))
	}
	tests := []struct {
		name string
		pkt  []byte
		want peers.DropReason
	}{
		{"ipv4 own source", v4(nil, "10.42.1.5"), peers.DropNone},
		{"ipv4 spoofed source of another peer", v4(nil, "10.42.2.5"), peers.DropNotAllowedSource},
		{"ipv4 source nobody owns", v4(nil, "192.0.2.1"), peers.DropNotAllowedSource},
		{"ipv4 broadcast source", v4(nil, "255.255.255.255"), peers.DropNotAllowedSource},
		{"ipv4 unspecified source (DHCP)", v4(nil, "0.0.0.0"), peers.DropNone},
		{"ipv4 spoofed inside a VLAN tag", v4([]uint16{7}, "10.42.2.5"), peers.DropNotAllowedSource},
		{"ipv4 spoofed inside QinQ", v4([]uint16{7, 8}, "10.42.2.5"), peers.DropNotAllowedSource},
		{"ipv4 own inside a VLAN tag", v4([]uint16{7}, "10.42.1.5"), peers.DropNone},
		{"three VLAN tags", v4([]uint16{7, 8, 9}, "10.42.1.5"), peers.DropMalformed},
		{"ipv4 header truncated", testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.7", nil)[:19]), peers.DropMalformed},
		{"ipv4 ethertype, ipv6 inside", testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv6("fd00:3::1", "ff02::1", 17, nil)), peers.DropMalformed},

		{"arp own sender", arp(testMACA, "10.42.1.1", "10.42.2.1"), peers.DropNone},
		{"gratuitous arp for another host's address", arp(testMACA, "10.42.2.1", "10.42.2.1"), peers.DropNotAllowedSource},
		{"arp naming this host's MAC as sender", arp(own, "10.42.1.1", "10.42.2.1"), peers.DropNotAllowedSource},
		{"arp naming another peer's MAC as sender", arp(testMACB, "10.42.1.1", "10.42.2.1"), peers.DropNotAllowedSource},
		{"arp probe (sender 0.0.0.0)", arp(testMACA, "0.0.0.0", "10.42.1.1"), peers.DropNone},
		{"arp truncated", testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARP(ARPReply, testMACA, "10.42.1.1", "10.42.2.1")[:27]), peers.DropMalformed},

		{"ipv6 link-local of its own MAC", ipv6(llA, 17, nil), peers.DropNone},
		{"ipv6 link-local of another MAC", ipv6(llB, 17, nil), peers.DropNotAllowedSource},
		{"ipv6 global of another peer", ipv6("fd00:3::1", 17, nil), peers.DropNotAllowedSource},
		{"ipv6 global nobody owns", ipv6("2001:db8::1", 17, nil), peers.DropNotAllowedSource},
		{"ipv6 v4-mapped own ipv4", ipv6("::ffff:10.42.1.5", 17, nil), peers.DropNotAllowedSource},
		{"ipv6 unspecified (DAD)", icmp("::", testNDP(ns, "fe80::1", 0, MAC{})), peers.DropNone},
		{"ipv6 header truncated", testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(llA, "ff02::1", 17, nil)[:39]), peers.DropMalformed},

		{"ns with its own source lladdr", icmp(llA, testNDP(ns, llB, ndpOptSourceLLAddr, testMACA)), peers.DropNone},
		{"ns with another source lladdr", icmp(llA, testNDP(ns, llB, ndpOptSourceLLAddr, testMACB)), peers.DropNotAllowedSource},
		{"na for itself", icmp(llA, testNDP(na, llA, ndpOptTargetLLAddr, testMACA)), peers.DropNone},
		{"na for another host's link-local", icmp(llA, testNDP(na, llB, ndpOptTargetLLAddr, testMACA)), peers.DropNotAllowedSource},
		{"na for another peer's global address", icmp(llA, testNDP(na, "fd00:3::1", ndpOptTargetLLAddr, testMACA)), peers.DropNotAllowedSource},
		{"na with another target lladdr", icmp(llA, testNDP(na, llA, ndpOptTargetLLAddr, testMACB)), peers.DropNotAllowedSource},
		{"na for unspecified", icmp(llA, testNDP(na, "::", ndpOptTargetLLAddr, testMACA)), peers.DropNotAllowedSource},
		{"spoofed na behind destination options", ipv6(llA, ipProtoDstOpts, dstOpts(testNDP(na, llB, ndpOptTargetLLAddr, testMACA))), peers.DropNotAllowedSource},
		{"na in a fragment (never NDP)", ipv6(llA, ipProtoFragment, frag(testNDP(na, llB, 0, MAC{}))), peers.DropNone},
		{"ndp option of length 0", icmp(llA, append(testNDP(ns, llB, 0, MAC{}), 1, 0, 0, 0, 0, 0, 0, 0)), peers.DropMalformed},
		{"ndp option past the end", icmp(llA, append(testNDP(ns, llB, 0, MAC{}), 1, 2, 0, 0, 0, 0, 0, 0)), peers.DropMalformed},
		{"na truncated", icmp(llA, testNDP(na, llA, 0, MAC{})[:20]), peers.DropMalformed},
		{"router solicitation with another lladdr", icmp(llA, []byte{ndpRouterSolicitation, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0x0b}), peers.DropNotAllowedSource},

		{"not ip (LLDP)", testkit.Ethernet(testMACB, testMACA, nil, 0x88cc, make([]byte, 40)), peers.DropNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRouter(42, FDBConfig{}, tb)
			r.FDB().SetStatic(own, nil)
			if why := r.Accept(p1, tt.pkt); why != tt.want {
				t.Fatalf("Accept = %v, want %v", why, tt.want)
			}
			_, learned := r.FDB().Lookup(testMACA)
			if learned != (tt.want == peers.DropNone) {
				t.Fatalf("source MAC learned: %v after %v", learned, tt.want)
			}
		})
	}
	// The legitimate owner of fd00:3::/64 may use it.
	r := NewRouter(42, FDBConfig{}, tb)
	if why := r.Accept(p3, testkit.Ethernet(BroadcastMAC, testMACC, nil, EtherTypeIPv6, testIPv6("fd00:3::1", "ff02::1", 17, nil))); why != peers.DropNone {
		t.Fatalf("owner's ipv6: %v", why)
	}
	if why := r.Accept(p3, testkit.Ethernet(BroadcastMAC, testMACC, nil, EtherTypeIPv6,
		testIPv6("fd00:3::1", "ff02::1", ipProtoICMPv6, testNDP(na, "fd00:3::1", ndpOptTargetLLAddr, testMACC)))); why != peers.DropNone {
		t.Fatalf("owner's NA: %v", why)
	}
}

// TestL2Router_RouteToSelf: a frame the host sends to its own TAP MAC (`ip neigh replace ADDR
// lladdr OWN_MAC dev weft0`, or an ARP cache a remote poisoned) used to come back as a nil
// peer, which the loop dereferenced. It is DropToSelf now, with no peer at all; and the remote
// ARP that would plant such a neighbour entry is refused on the way in.
func TestL2Router_RouteToSelf(t *testing.T) {
	tb, p1, p2, _ := testPeers(t)
	own := MAC{0x02, 0, 0, 0, 0, 0xee}
	r := NewRouter(42, FDBConfig{}, tb)
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	r.FDB().SetStatic(own, nil)
	for _, frame := range [][]byte{
		testkit.Ethernet(own, own, nil, EtherTypeIPv4, testIPv4("10.42.0.1", "10.42.0.9", nil)),
		testkit.Ethernet(own, testMACA, []uint16{5}, EtherTypeARP, nil),
		testkit.Ethernet(own, own, nil, 0x1234, nil)[:EthernetHeaderLen],
	} {
		got, why := r.Route(frame, make([]*peers.Peer, 0, 4))
		if why != peers.DropToSelf || len(got) != 0 {
			t.Fatalf("Route to own MAC = %v, %v; want no peer, to_self", got, why)
		}
	}
	// A remote's ARP naming this host's MAC as its sender (the victim would answer to its
	// own MAC), whether or not the Ethernet source also claims it.
	for _, src := range []MAC{testMACA, own} {
		f := testkit.Ethernet(BroadcastMAC, src, nil, EtherTypeARP, testARP(ARPRequest, own, "10.42.1.1", "10.42.0.1"))
		if why := r.Accept(p1, f); why != peers.DropNotAllowedSource {
			t.Fatalf("ARP with own MAC as sender (eth src %v): %v", src, why)
		}
	}
}

func TestL2Router_FloodBudget(t *testing.T) {
	tb, p1, _, _ := testPeers(t)
	r := NewRouter(42, FDBConfig{FloodRate: 3}, tb)
	r.FDB().AddRemote(p1)
	frame := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, nil)
	var drops int
	for range 10 {
		if _, why := r.Route(frame, nil); why == peers.DropFloodCapped {
			drops++
		}
	}
	if drops != 7 {
		t.Fatalf("%d flood drops, want 7", drops)
	}
}

func TestL2Router_Allocs(t *testing.T) {
	tb, p1, p2, _ := testPeers(t)
	r := NewRouter(42, FDBConfig{}, tb)
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	in := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.5", make([]byte, 100)))
	arp := testkit.Ethernet(BroadcastMAC, testMACA, []uint16{3}, EtherTypeARP, testARP(ARPRequest, testMACA, "10.42.1.5", "10.42.2.5"))
	na := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(eui64LinkLocal(testMACA), "ff02::1", ipProtoICMPv6,
		testNDP(ndpNeighborAdvert, eui64LinkLocal(testMACA), ndpOptTargetLLAddr, testMACA)))
	spoofed := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.2.5", "10.42.2.6", nil))
	out := testkit.Ethernet(testMACA, testMACB, nil, EtherTypeIPv4, make([]byte, 100))
	bcast := testkit.Ethernet(BroadcastMAC, testMACB, nil, EtherTypeARP, nil)
	r.Accept(p1, in)
	dst := make([]*peers.Peer, 0, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Accept(p1, in)
		r.Accept(p1, arp)
		r.Accept(p1, na)
		r.Accept(p1, spoofed)
		r.Route(out, dst[:0])
		r.Route(bcast, dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

// FuzzL2Router_Route: hostile frames from the local device (anything a process on the host
// can write to the TAP, any destination MAC including the host's own) never panic, and Route
// returns either non-nil peers of the VNI and DropNone, or no peer and a drop reason.
func FuzzL2Router_Route(f *testing.F) {
	tb, p1, p2, _ := testPeers(f)
	own := MAC{0x02, 0, 0, 0, 0, 0xee}
	f.Add(testkit.Ethernet(own, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.0.1", "10.42.1.1", nil)))
	f.Add(testkit.Ethernet(testMACA, own, nil, EtherTypeIPv4, testIPv4("10.42.0.1", "10.42.1.1", nil)))
	f.Add(testkit.Ethernet(BroadcastMAC, own, []uint16{1}, EtherTypeARP, testARPRequest(own, "10.42.0.1", "10.42.1.1")))
	f.Add(testkit.Ethernet(testMACC, own, nil, EtherTypeIPv6, nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := NewRouter(42, FDBConfig{FloodRate: 2}, tb)
		r.FDB().AddRemote(p1)
		r.FDB().AddRemote(p2)
		r.FDB().SetStatic(own, nil)
		r.FDB().SetStatic(testMACB, p2)
		r.Accept(p1, testkit.Ethernet(own, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.1", "10.42.0.1", nil)))
		for range 3 { // the third flood is past the budget
			got, why := r.Route(frame, nil)
			if (len(got) == 0) == (why == peers.DropNone) {
				t.Fatalf("Route = %v, %v: peers and a reason, or neither", got, why)
			}
			for _, p := range got {
				if p != p1 && p != p2 {
					t.Fatalf("Route returned %p, not a peer of the VNI", p)
				}
			}
			if len(frame) >= EthernetHeaderLen && MAC(frame[0:6]) == own && why != peers.DropToSelf {
				t.Fatalf("frame to own MAC: %v, %v", got, why)
			}
		}
	})
}

// FuzzL2Router_Accept: hostile frames from an authenticated peer never panic; what Accept
// lets through has a source MAC the peer may use (never this host's, never another peer's
// static one), and its IPv4 source or ARP sender is unspecified or the peer's own.
func FuzzL2Router_Accept(f *testing.F) {
	tb, p1, p2, _ := testPeers(f)
	own := MAC{0x02, 0, 0, 0, 0, 0xee}
	ll := eui64LinkLocal(testMACA)
	f.Add(testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.5", nil)))
	f.Add(testkit.Ethernet(testMACB, testMACA, []uint16{4}, EtherTypeIPv4, testIPv4("10.42.2.5", "10.42.2.6", nil)))
	f.Add(testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARP(ARPReply, testMACA, "10.42.2.1", "10.42.2.1")))
	f.Add(testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(ll, "ff02::1", ipProtoICMPv6,
		testNDP(ndpNeighborAdvert, ll, ndpOptTargetLLAddr, testMACA))))
	f.Add(testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(ll, "ff02::1", ipProtoDstOpts,
		append([]byte{ipProtoICMPv6, 0, 1, 4, 0, 0, 0, 0}, testNDP(ndpNeighborSolicit, ll, ndpOptSourceLLAddr, testMACA)...))))
	f.Add(testkit.Ethernet(BroadcastMAC, own, nil, EtherTypeARP, testARP(ARPRequest, own, "10.42.1.1", "10.42.0.1")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := NewRouter(42, FDBConfig{}, tb)
		r.FDB().SetStatic(own, nil)
		r.FDB().SetStatic(testMACB, p2)
		if r.Accept(p1, frame) != peers.DropNone {
			return
		}
		eth, err := ParseEthernet(frame)
		if err != nil {
			t.Fatalf("accepted a frame that does not parse: %v", err)
		}
		if eth.Src == own || eth.Src == testMACB || eth.Src.IsMulticast() || eth.Src.IsZero() {
			t.Fatalf("accepted source MAC %v", eth.Src)
		}
		if got, ok := r.FDB().Lookup(eth.Src); !ok || got != p1 {
			t.Fatalf("accepted source MAC %v not learned behind the sender", eth.Src)
		}
		p := frame[eth.PayloadOffset:]
		var src netip.Addr
		switch eth.EtherType {
		case EtherTypeIPv4:
			src = netip.AddrFrom4([4]byte(p[12:16]))
		case EtherTypeARP:
			a, _ := ParseARP(p)
			src = a.SenderIP
			if a.SenderMAC != eth.Src {
				t.Fatalf("accepted ARP with sender MAC %v from %v", a.SenderMAC, eth.Src)
			}
		case EtherTypeIPv6:
			if a := netip.AddrFrom16([16]byte(p[8:24])); !a.IsLinkLocalUnicast() {
				src = a
			}
		}
		if src.IsValid() && !src.IsUnspecified() && tb.Lookup(src) != p1 {
			t.Fatalf("accepted source %v, not the sender's", src)
		}
	})
}

// BenchmarkL2Router_Accept: the inbound check per frame (parse, source rule, learn refresh).
// BenchmarkFDB_LearnRefresh is what Accept cost before it checked sources.
func BenchmarkL2Router_Accept(b *testing.B) {
	tb, p1, _, _ := testPeers(b)
	ll := eui64LinkLocal(testMACA)
	frames := map[string][]byte{
		"ipv4-64":   testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.5", make([]byte, 64-14-20))),
		"ipv4-1420": testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.5", make([]byte, 1420-14-20))),
		"vlan-ipv4": testkit.Ethernet(testMACB, testMACA, []uint16{7}, EtherTypeIPv4, testIPv4("10.42.1.5", "10.42.2.5", make([]byte, 64))),
		"arp":       testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARP(ARPRequest, testMACA, "10.42.1.5", "10.42.2.5")),
		"ndp-na": testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv6, testIPv6(ll, "ff02::1", ipProtoICMPv6,
			testNDP(ndpNeighborAdvert, ll, ndpOptTargetLLAddr, testMACA))),
	}
	for _, name := range []string{"ipv4-64", "ipv4-1420", "vlan-ipv4", "arp", "ndp-na"} {
		f := frames[name]
		b.Run(name, func(b *testing.B) {
			r := NewRouter(42, FDBConfig{}, tb)
			if why := r.Accept(p1, f); why != peers.DropNone {
				b.Fatal(why)
			}
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			for b.Loop() {
				r.Accept(p1, f)
			}
		})
	}
}

// BenchmarkL2Router_Route: the outbound lookup per frame to a learned MAC.
func BenchmarkL2Router_Route(b *testing.B) {
	tb, p1, p2, _ := testPeers(b)
	r := NewRouter(42, FDBConfig{}, tb)
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	r.FDB().SetStatic(testMACB, p2)
	dst := make([]*peers.Peer, 0, 4)
	for _, size := range []int{64, 1420, 65535} {
		f := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, size-EthernetHeaderLen))
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.Route(f, dst[:0])
			}
		})
	}
}
