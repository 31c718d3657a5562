package l2

import (
	"slices"
	"testing"

	"github.com/weftnet/weft/peers"
)

func TestL2Router_RouteAccept(t *testing.T) {
	p1, p2, p3 := &peers.Peer{}, &peers.Peer{}, &peers.Peer{}
	r := NewRouter(42, FDBConfig{})
	dst := make([]*peers.Peer, 0, 8)

	if _, why := r.Route(make([]byte, 13), dst); why != peers.DropMalformed {
		t.Fatalf("short frame: %v", why)
	}
	if _, why := r.Route(testFrame(BroadcastMAC, testMACA, nil, EtherTypeARP, nil), dst); why != peers.DropNoRoute {
		t.Fatalf("no peers: %v", why)
	}
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	r.FDB().AddRemote(p3)
	r.FDB().SetStatic(testMACC, p3) // p3's TAP MAC, from gossip

	// Learning from inbound frames.
	if why := r.Accept(p1, testFrame(testMACC, testMACA, nil, EtherTypeIPv4, nil)); why != peers.DropNone {
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
		got, why := r.Route(testFrame(tt.dst, testMACB, nil, EtherTypeIPv4, nil), dst[:0])
		if why != peers.DropNone || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Route = %v, %v", tt.name, got, why)
		}
	}

	inbound := []struct {
		name string
		src  *peers.Peer
		pkt  []byte
		want peers.DropReason
	}{
		{"short", p1, make([]byte, 10), peers.DropMalformed},
		{"multicast source", p1, testFrame(testMACA, BroadcastMAC, nil, EtherTypeIPv4, nil), peers.DropMalformed},
		{"spoofed static MAC", p1, testFrame(testMACA, testMACC, nil, EtherTypeIPv4, nil), peers.DropNotAllowedSource},
		{"owner of static MAC", p3, testFrame(testMACA, testMACC, nil, EtherTypeIPv4, nil), peers.DropNone},
		{"learned MAC moves", p2, testFrame(testMACC, testMACA, nil, EtherTypeIPv4, nil), peers.DropNone},
	}
	for _, tt := range inbound {
		if why := r.Accept(tt.src, tt.pkt); why != tt.want {
			t.Errorf("%s: Accept = %v, want %v", tt.name, why, tt.want)
		}
	}
	if got, _ := r.Route(testFrame(testMACA, testMACB, nil, EtherTypeIPv4, nil), dst[:0]); !slices.Equal(got, []*peers.Peer{p2}) {
		t.Fatalf("after move: %v", got)
	}
	r.FDB().RemoveRemote(p2)
	if got, _ := r.Route(testFrame(testMACA, testMACB, nil, EtherTypeIPv4, nil), dst[:0]); !slices.Equal(got, []*peers.Peer{p1, p3}) {
		t.Fatalf("after removing the peer: %v", got)
	}
}

func TestL2Router_FloodBudget(t *testing.T) {
	p1 := &peers.Peer{}
	r := NewRouter(42, FDBConfig{FloodRate: 3})
	r.FDB().AddRemote(p1)
	frame := testFrame(BroadcastMAC, testMACA, nil, EtherTypeARP, nil)
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
	p1, p2 := &peers.Peer{}, &peers.Peer{}
	r := NewRouter(42, FDBConfig{})
	r.FDB().AddRemote(p1)
	r.FDB().AddRemote(p2)
	in := testFrame(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, 100))
	out := testFrame(testMACA, testMACB, nil, EtherTypeIPv4, make([]byte, 100))
	bcast := testFrame(BroadcastMAC, testMACB, nil, EtherTypeARP, nil)
	r.Accept(p1, in)
	dst := make([]*peers.Peer, 0, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Accept(p1, in)
		r.Route(out, dst[:0])
		r.Route(bcast, dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}
