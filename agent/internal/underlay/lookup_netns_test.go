package underlay_test

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/agent/internal/underlay"
	"github.com/weftnet/weft/internal/netlab"
)

// TestNetlink_VethMTU: the netlink lookup, run in a namespace whose only link to its peer is
// a veth of MTU 1400 with a route of MTU 1300 toward a second address, finds each.
func TestNetlink_VethMTU(t *testing.T) {
	a, b := netlab.PairT(t, "ul0", "10.77.0.1/24", "10.77.0.2/24")
	for _, h := range []*netlab.Host{a, b} {
		if _, err := h.Run("ip", "link", "set", "ul0", "mtu", "1400"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Run("ip", "route", "add", "10.78.0.0/24", "via", "10.77.0.2", "mtu", "1300"); err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromName(a.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	look := underlay.Netlink(h)
	ip := netip.MustParseAddr
	if k, err := look.Route(ip("10.77.0.2")); err != nil || k != (underlay.Link{Interface: "ul0", MTU: 1400}) {
		t.Errorf("route to the peer: %+v %v", k, err)
	}
	if k, err := look.Route(ip("10.78.0.9")); err != nil || k != (underlay.Link{Interface: "ul0", MTU: 1300}) {
		t.Errorf("route with an mtu metric: %+v %v", k, err)
	}
	if k, err := look.Local(ip("10.77.0.1")); err != nil || k.Interface != "ul0" || k.MTU != 1400 {
		t.Errorf("the link of the local address: %+v %v", k, err)
	}
	if k, err := look.Route(ip("10.77.0.1")); err != nil || !k.Loopback {
		t.Errorf("route to this host's own address: %+v %v, want the loopback", k, err)
	}
	if ks, err := look.Defaults(); len(ks) != 0 {
		t.Errorf("defaults of a namespace without a default route: %+v %v", ks, err)
	}
	// No peer, no default route: the addressed link is the last resort (not lo, and not a
	// bridge such as weft-br0 whose MTU is the overlay's).
	for _, c := range [][]string{{"ip", "link", "add", "br9", "type", "bridge"}, {"ip", "link", "set", "br9", "mtu", "1300", "up"},
		{"ip", "addr", "add", "10.90.0.1/24", "dev", "br9"}} {
		if _, err := a.Run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if ks, err := look.Addressed(); err != nil || len(ks) != 1 || ks[0] != (underlay.Link{Interface: "ul0", MTU: 1400}) {
		t.Errorf("addressed links: %+v %v", ks, err)
	}
	if r := look.Find(underlay.Targets{}, func(v6 bool) int { return 68 }); !r.Found || r.Best.Interface != "ul0" || r.Best.Inner != 1332 {
		t.Errorf("Find with nothing known: %+v", r)
	}
	if _, err := a.Run("ip", "route", "add", "default", "via", "10.77.0.2"); err != nil {
		t.Fatal(err)
	}
	if ks, err := look.Defaults(); err != nil || len(ks) != 1 || ks[0] != (underlay.Link{Interface: "ul0", MTU: 1400}) {
		t.Errorf("default route: %+v %v", ks, err)
	}
	r := look.Find(underlay.Targets{Peers: []netip.Addr{ip("10.77.0.2"), ip("10.78.0.9")}}, func(v6 bool) int { return 68 })
	if !r.Found || r.Best.Interface != "ul0" || r.Best.MTU != 1300 || r.Best.Inner != 1232 {
		t.Errorf("Find: %+v", r)
	}
}
