package underlay

import (
	"fmt"
	"net/netip"
)

// Link is where a route leads: the device a datagram leaves on and the MTU it may be.
type Link struct {
	// Interface is the device's name (eth0).
	Interface string
	// MTU is the route's MTU metric when it has one (ip route … mtu N, or a path MTU the
	// kernel learned), else the device's MTU.
	MTU int
	// IPv6: the route is an IPv6 route (the underlay's IP header is 40 bytes, not 20).
	IPv6 bool
	// Loopback: the device is a loopback; a peer reached through it is on this host, and
	// says nothing about the network's MTU.
	Loopback bool
}

// Lookup is the host's routing table as the selection queries it: netlink on Linux
// (Netlink), fakes in tests. A nil function finds nothing.
type Lookup struct {
	// Route is the link a datagram to dst leaves on.
	Route func(dst netip.Addr) (Link, error)
	// Local is the link that holds the address addr.
	Local func(addr netip.Addr) (Link, error)
	// Defaults are the links of the default routes of both families.
	Defaults func() ([]Link, error)
	// Addressed are the network interfaces (physical, veth, vlan, bond, macvlan, ipvlan:
	// not tun/tap, WireGuard or bridges) that are up and hold a global unicast address
	// (IPv6 set only when a link has no IPv4 one): the last resort of a host that knows no
	// peer and has no default route, like the first host of a lab in its own namespace.
	Addressed func() ([]Link, error)
}

// Targets is what the agent knows, before it starts, of where its data port's traffic goes.
type Targets struct {
	// Peers are the underlay addresses of peers: static peers' endpoints, gossip join and
	// retry_join addresses (IP literals; names are not resolved, which would send queries).
	Peers []netip.Addr
	// Local are this host's own underlay addresses: the gossip bind and advertise
	// addresses that are neither unspecified nor empty.
	Local []netip.Addr
}

// Candidate is one underlay considered, with the inner MTU it leaves.
type Candidate struct {
	Link
	// Via says why the link was considered: "route to 192.0.2.7", "address 192.0.2.1",
	// "default route".
	Via string
	// Overhead is what weft adds around an inner packet over this link's family.
	Overhead int
	// Inner is Link.MTU − Overhead: the largest overlay MTU this underlay carries.
	Inner int
}

// Result is what Find found.
type Result struct {
	// Best is the candidate that leaves the smallest inner MTU; valid when Found.
	Best Candidate
	// Found: some candidate was found.
	Found bool
	// Candidates are every underlay considered, in the order they were found.
	Candidates []Candidate
	// Failed lists the lookups that found nothing usable and why, for the log.
	Failed []string
}

// minLinkMTU is the smallest MTU taken from a route or a device (IPv4's minimum datagram
// that every link must carry); below it a value is not believed.
const minLinkMTU = 68

// Find picks the underlay of the data port's traffic: the routes toward t.Peers; when none
// of them is known, the links holding t.Local; when none, the default routes. Among several
// candidates of a step the one leaving the smallest inner MTU wins, so that the overlay's
// packets fit every path known. overhead is weft's overhead over an IPv4 or an IPv6
// underlay (tunnel.Overhead for the mode's framing). Loopback links and links whose MTU is
// not believable are skipped. Nothing is sent on the network.
func (l Lookup) Find(t Targets, overhead func(ipv6 bool) int) Result {
	var r Result
	steps := []func(){
		func() {
			for _, a := range uniq(t.Peers) {
				r.add(l.Route, a, "route to "+a.String(), overhead)
			}
		},
		func() {
			for _, a := range uniq(t.Local) {
				r.add(l.Local, a, "address "+a.String(), overhead)
			}
		},
		func() {
			if l.Defaults == nil {
				r.Failed = append(r.Failed, "default route: no lookup")
				return
			}
			links, err := l.Defaults()
			if err != nil {
				r.Failed = append(r.Failed, "default route: "+err.Error())
			}
			if len(links) == 0 && err == nil {
				r.Failed = append(r.Failed, "default route: none")
			}
			for _, k := range links {
				r.consider(k, "default route", overhead)
			}
		},
		func() {
			if l.Addressed == nil {
				return
			}
			links, err := l.Addressed()
			if err != nil {
				r.Failed = append(r.Failed, "addressed links: "+err.Error())
			}
			for _, k := range links {
				r.consider(k, "addressed link "+k.Interface, overhead)
			}
		},
	}
	for _, step := range steps {
		step()
		if r.Found {
			break
		}
	}
	return r
}

// add looks a up with f and considers the link found.
func (r *Result) add(f func(netip.Addr) (Link, error), a netip.Addr, via string, overhead func(bool) int) {
	if f == nil {
		r.Failed = append(r.Failed, via+": no lookup")
		return
	}
	k, err := f(a)
	if err != nil {
		r.Failed = append(r.Failed, fmt.Sprintf("%s: %v", via, err))
		return
	}
	r.consider(k, via, overhead)
}

// consider adds k as a candidate unless it is a loopback or has no believable MTU.
func (r *Result) consider(k Link, via string, overhead func(bool) int) {
	switch {
	case k.Loopback:
		r.Failed = append(r.Failed, fmt.Sprintf("%s: via loopback %s (a peer on this host)", via, k.Interface))
		return
	case k.MTU < minLinkMTU:
		r.Failed = append(r.Failed, fmt.Sprintf("%s: %s has no usable MTU (%d)", via, k.Interface, k.MTU))
		return
	}
	o := overhead(k.IPv6)
	c := Candidate{Link: k, Via: via, Overhead: o, Inner: k.MTU - o}
	r.Candidates = append(r.Candidates, c)
	if !r.Found || c.Inner < r.Best.Inner {
		r.Best, r.Found = c, true
	}
}

// uniq drops invalid and repeated addresses (IPv4-mapped IPv6 counts as IPv4).
func uniq(in []netip.Addr) []netip.Addr {
	seen := make(map[netip.Addr]bool, len(in))
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}
