package gossip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The gossip advertise address: the address other members reach this host at, for gossip and
// (with the data port) for the encrypted datapath. memberlist, given a wildcard bind and no
// advertise address, only accepts a private IPv4 address of the host and refuses to start on
// a host whose only address is public, TEST-NET or IPv6. weft picks the address itself, in
// this order, and logs which it chose and why:
//
//  1. gossip.advertise (--gossip-advertise), as given;
//  2. the bind address, when it is not a wildcard;
//  3. the preferred source address of the IPv4 default route, or the first global address
//     of its interface; then the same for the IPv6 default route;
//  4. without a default route: the first global address of any interface that is up
//     (IPv4 before IPv6).
//
// Only when none of these exists is it an error, and the error names the flag to set.

// errNoAdvertise is returned when the host has no address other members could reach.
var errNoAdvertise = errors.New("no address to advertise for gossip: the host has no default route and no global address on an interface that is up; set gossip.advertise (--gossip-advertise IP)")

// advertiseChoice is the address chosen and the reason, for the log.
type advertiseChoice struct {
	addr netip.Addr
	why  string
}

// chooseAdvertise resolves the advertise address for a bind host (an IP or empty) and an
// advertise host (an IP or empty). A hostname in either is resolved once.
func chooseAdvertise(bindHost, advHost string) (advertiseChoice, error) {
	if advHost != "" {
		a, err := hostAddr(advHost)
		if err != nil {
			return advertiseChoice{}, fmt.Errorf("gossip.advertise %q: %w", advHost, err)
		}
		return advertiseChoice{a, "gossip.advertise"}, nil
	}
	if bindHost != "" {
		a, err := hostAddr(bindHost)
		if err != nil {
			return advertiseChoice{}, fmt.Errorf("gossip.bind %q: %w", bindHost, err)
		}
		if !a.IsUnspecified() {
			return advertiseChoice{a, "gossip.bind"}, nil
		}
	}
	return detectAdvertise(netlinkAddrs{})
}

// hostAddr parses an IP, or resolves a host name to its first address.
func hostAddr(host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("not an IP address and does not resolve: %v", err)
	}
	a, _ := netip.AddrFromSlice(ips[0])
	return a.Unmap(), nil
}

// hostAddrs is what detectAdvertise reads of the host: a seam for the unit test.
type hostAddrs interface {
	// defaultRoute returns the default route of a family (unix.AF_INET or AF_INET6): its
	// preferred source (may be invalid) and its interface index; ok is false without one.
	defaultRoute(family int) (src netip.Addr, link int, ok bool)
	// addrs returns the addresses of one interface (link > 0) or of every interface that is
	// up (link 0), in the kernel's order.
	addrs(link, family int) []netip.Addr
}

// detectAdvertise applies steps 3 and 4 of the order above.
func detectAdvertise(h hostAddrs) (advertiseChoice, error) {
	families := []struct {
		f    int
		name string
	}{{unix.AF_INET, "IPv4"}, {unix.AF_INET6, "IPv6"}}
	for _, fam := range families {
		src, link, ok := h.defaultRoute(fam.f)
		if !ok {
			continue
		}
		if usable(src) {
			return advertiseChoice{src, "source address of the " + fam.name + " default route"}, nil
		}
		for _, a := range h.addrs(link, fam.f) {
			if usable(a) {
				return advertiseChoice{a, "address of the " + fam.name + " default route's interface"}, nil
			}
		}
	}
	for _, fam := range families {
		for _, a := range h.addrs(0, fam.f) {
			if usable(a) {
				return advertiseChoice{a, "first global " + fam.name + " address (no default route)"}, nil
			}
		}
	}
	return advertiseChoice{}, errNoAdvertise
}

// usable: an address another host could send to (not loopback, link-local or multicast).
func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && !a.IsInterfaceLocalMulticast()
}

// netlinkAddrs reads the host's routes and addresses over netlink.
type netlinkAddrs struct{}

func (netlinkAddrs) defaultRoute(family int) (netip.Addr, int, bool) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	best, found := netlink.Route{}, false
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex == 0 && len(r.MultiPath) > 0 {
			r.LinkIndex = r.MultiPath[0].LinkIndex
		}
		if !found || r.Priority < best.Priority {
			best, found = r, true
		}
	}
	if !found {
		return netip.Addr{}, 0, false
	}
	src, _ := netip.AddrFromSlice(best.Src)
	return src.Unmap(), best.LinkIndex, true
}

func (netlinkAddrs) addrs(link, family int) []netip.Addr {
	var links []netlink.Link
	if link > 0 {
		l, err := netlink.LinkByIndex(link)
		if err != nil {
			return nil
		}
		links = []netlink.Link{l}
	} else {
		all, err := netlink.LinkList()
		if err != nil {
			return nil
		}
		for _, l := range all {
			if l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().Flags&net.FlagLoopback == 0 {
				links = append(links, l)
			}
		}
	}
	var out []netip.Addr
	for _, l := range links {
		as, err := netlink.AddrList(l, family)
		if err != nil {
			continue
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
