package underlay

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// overhead is weft's L3 overhead (tunnel.Overhead(FramingL3, v6)), written out so that this
// package imports nothing of weft.
func overhead(v6 bool) int {
	if v6 {
		return 88
	}
	return 68
}

// fakeTable is a routing table: the link of each destination and local address.
type fakeTable struct {
	routes   map[netip.Addr]Link
	locals   map[netip.Addr]Link
	defaults []Link
	asked    []string
}

func (f *fakeTable) lookup() Lookup {
	return Lookup{
		Route: func(dst netip.Addr) (Link, error) {
			f.asked = append(f.asked, "route "+dst.String())
			if k, ok := f.routes[dst]; ok {
				return k, nil
			}
			return Link{}, errors.New("network unreachable")
		},
		Local: func(a netip.Addr) (Link, error) {
			f.asked = append(f.asked, "local "+a.String())
			if k, ok := f.locals[a]; ok {
				return k, nil
			}
			return Link{}, errors.New("no interface holds it")
		},
		Defaults: func() ([]Link, error) {
			f.asked = append(f.asked, "defaults")
			return f.defaults, nil
		},
	}
}

var (
	a1, a2, a6 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8::7")
	self       = netip.MustParseAddr("192.0.2.10")
	eth0       = Link{Interface: "eth0", MTU: 1460}
	wg0        = Link{Interface: "wg0", MTU: 1420}
	eth0v6     = Link{Interface: "eth0", MTU: 1460, IPv6: true}
	jumbo      = Link{Interface: "ens5", MTU: 9001}
	lo         = Link{Interface: "lo", MTU: 65536, Loopback: true}
)

func TestLookup_Find(t *testing.T) {
	cases := []struct {
		name      string
		table     fakeTable
		targets   Targets
		want      Candidate
		wantFound bool
		wantAsked []string
	}{
		{
			name:      "one peer: its route's link",
			table:     fakeTable{routes: map[netip.Addr]Link{a1: eth0}, defaults: []Link{jumbo}},
			targets:   Targets{Peers: []netip.Addr{a1}, Local: []netip.Addr{self}},
			want:      Candidate{Link: eth0, Via: "route to 192.0.2.1", Overhead: 68, Inner: 1392},
			wantFound: true,
			wantAsked: []string{"route 192.0.2.1"},
		},
		{
			name:      "several peers: the smallest inner MTU wins",
			table:     fakeTable{routes: map[netip.Addr]Link{a1: jumbo, a2: wg0}},
			targets:   Targets{Peers: []netip.Addr{a1, a2, a1}},
			want:      Candidate{Link: wg0, Via: "route to 198.51.100.2", Overhead: 68, Inner: 1352},
			wantFound: true,
			wantAsked: []string{"route 192.0.2.1", "route 198.51.100.2"},
		},
		{
			name:      "an IPv6 peer on the same link costs 20 bytes more",
			table:     fakeTable{routes: map[netip.Addr]Link{a1: eth0, a6: eth0v6}},
			targets:   Targets{Peers: []netip.Addr{a1, a6}},
			want:      Candidate{Link: eth0v6, Via: "route to 2001:db8::7", Overhead: 88, Inner: 1372},
			wantFound: true,
			wantAsked: []string{"route 192.0.2.1", "route 2001:db8::7"},
		},
		{
			name:      "no route to the peers: the bind/advertise address's link",
			table:     fakeTable{locals: map[netip.Addr]Link{self: wg0}, defaults: []Link{jumbo}},
			targets:   Targets{Peers: []netip.Addr{a1}, Local: []netip.Addr{self}},
			want:      Candidate{Link: wg0, Via: "address 192.0.2.10", Overhead: 68, Inner: 1352},
			wantFound: true,
			wantAsked: []string{"route 192.0.2.1", "local 192.0.2.10"},
		},
		{
			name:      "nothing known: the default routes, smallest wins",
			table:     fakeTable{defaults: []Link{jumbo, eth0v6}},
			targets:   Targets{Local: []netip.Addr{netip.IPv4Unspecified()}},
			want:      Candidate{Link: eth0v6, Via: "default route", Overhead: 88, Inner: 1372},
			wantFound: true,
			wantAsked: []string{"defaults"},
		},
		{
			name:      "a peer on this host (loopback) says nothing: the default route",
			table:     fakeTable{routes: map[netip.Addr]Link{a1: lo}, defaults: []Link{jumbo}},
			targets:   Targets{Peers: []netip.Addr{a1}},
			want:      Candidate{Link: jumbo, Via: "default route", Overhead: 68, Inner: 8933},
			wantFound: true,
			wantAsked: []string{"route 192.0.2.1", "defaults"},
		},
		{
			name:      "an unbelievable MTU is skipped",
			table:     fakeTable{routes: map[netip.Addr]Link{a1: {Interface: "odd0", MTU: 0}}, defaults: []Link{{Interface: "odd1", MTU: 12}}},
			targets:   Targets{Peers: []netip.Addr{a1}},
			wantAsked: []string{"route 192.0.2.1", "defaults"},
		},
		{
			name:      "nothing at all",
			targets:   Targets{Peers: []netip.Addr{a1}},
			wantAsked: []string{"route 192.0.2.1", "defaults"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.table.lookup().Find(tc.targets, overhead)
			if r.Found != tc.wantFound || r.Best != tc.want {
				t.Errorf("Find = %+v found %v, want %+v found %v (failed: %v)", r.Best, r.Found, tc.want, tc.wantFound, r.Failed)
			}
			if !reflect.DeepEqual(tc.table.asked, tc.wantAsked) {
				t.Errorf("asked %v, want %v", tc.table.asked, tc.wantAsked)
			}
			if !r.Found && len(r.Failed) == 0 {
				t.Error("found nothing and says no reason")
			}
		})
	}
}

func TestLookup_FindNilFunctions(t *testing.T) {
	r := Lookup{}.Find(Targets{Peers: []netip.Addr{a1}, Local: []netip.Addr{self}}, overhead)
	if r.Found || !strings.Contains(strings.Join(r.Failed, ";"), "no lookup") {
		t.Fatalf("empty lookup: %+v", r)
	}
}
