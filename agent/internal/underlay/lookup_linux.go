package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// Netlink is the Lookup of the network namespace h speaks to (a zero Handle: the calling
// thread's namespace). Every function is a netlink query: nothing goes on the network.
func Netlink(h *netlink.Handle) Lookup {
	return Lookup{
		Route: func(dst netip.Addr) (Link, error) {
			rs, err := h.RouteGet(net.IP(dst.AsSlice()))
			if err != nil {
				return Link{}, fmt.Errorf("route get: %w", err)
			}
			if len(rs) == 0 {
				return Link{}, errors.New("no route")
			}
			return linkOf(h, rs[0].LinkIndex, rs[0].MTU, dst.Is6())
		},
		Local: func(addr netip.Addr) (Link, error) {
			family := netlink.FAMILY_V4
			if addr.Is6() {
				family = netlink.FAMILY_V6
			}
			as, err := h.AddrList(nil, family)
			if err != nil {
				return Link{}, fmt.Errorf("address list: %w", err)
			}
			for _, a := range as {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
					return linkOf(h, a.LinkIndex, 0, addr.Is6())
				}
			}
			return Link{}, errors.New("no interface holds it")
		},
		Addressed: func() ([]Link, error) {
			as, err := h.AddrList(nil, netlink.FAMILY_ALL)
			if err != nil {
				return nil, fmt.Errorf("address list: %w", err)
			}
			v4, v6 := map[int]bool{}, map[int]bool{}
			for _, a := range as {
				ip, ok := netip.AddrFromSlice(a.IP)
				if !ok || !ip.Unmap().IsGlobalUnicast() {
					continue
				}
				if ip.Unmap().Is4() {
					v4[a.LinkIndex] = true
				} else {
					v6[a.LinkIndex] = true
				}
			}
			var out []Link
			for _, idx := range sortedKeys(v4, v6) {
				k, err := linkOf(h, idx, 0, !v4[idx])
				if err != nil || k.Loopback {
					continue
				}
				if l, err := h.LinkByIndex(idx); err != nil || l.Attrs().Flags&net.FlagUp == 0 || !underlayType[l.Type()] {
					continue
				}
				out = append(out, k)
			}
			return out, nil
		},
		Defaults: func() ([]Link, error) {
			var out []Link
			var errs []error
			for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
				rs, err := h.RouteList(nil, family) // the main table
				if err != nil {
					errs = append(errs, fmt.Errorf("route list: %w", err))
					continue
				}
				for _, r := range rs {
					if r.Dst != nil && !isDefault(r.Dst) {
						continue
					}
					idx := []int{r.LinkIndex}
					if len(r.MultiPath) > 0 {
						idx = idx[:0]
						for _, nh := range r.MultiPath {
							idx = append(idx, nh.LinkIndex)
						}
					}
					for _, i := range idx {
						if k, err := linkOf(h, i, r.MTU, family == netlink.FAMILY_V6); err == nil {
							out = append(out, k)
						} else {
							errs = append(errs, err)
						}
					}
				}
			}
			if len(out) > 0 {
				return out, nil
			}
			return nil, errors.Join(errs...)
		},
	}
}

// linkOf is the Link of device index: routeMTU when the route carries one (never above the
// device's: the kernel sends no larger), else the device's MTU.
func linkOf(h *netlink.Handle, index, routeMTU int, ipv6 bool) (Link, error) {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return Link{}, fmt.Errorf("device %d: %w", index, err)
	}
	a := l.Attrs()
	mtu := a.MTU
	if routeMTU > 0 && routeMTU < mtu {
		mtu = routeMTU
	}
	return Link{Interface: a.Name, MTU: mtu, IPv6: ipv6, Loopback: a.Flags&net.FlagLoopback != 0}, nil
}

// isDefault reports whether dst is a default route's destination (0.0.0.0/0 or ::/0).
func isDefault(dst *net.IPNet) bool {
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// LinkMTU is the MTU of the device a datagram to dst leaves on (a netlink query: nothing is
// sent). Unlike Lookup.Route it ignores a route's MTU and the path MTU the kernel learned
// from ICMP errors: it is the ceiling of the tunnel's own per-peer path-MTU search, which
// must be able to find a path that widened again.
func LinkMTU(dst netip.Addr) (int, error) {
	rs, err := netlink.RouteGet(net.IP(dst.Unmap().AsSlice()))
	if err != nil {
		return 0, fmt.Errorf("route get %s: %w", dst, err)
	}
	if len(rs) == 0 {
		return 0, fmt.Errorf("no route to %s", dst)
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("device %d: %w", rs[0].LinkIndex, err)
	}
	return l.Attrs().MTU, nil
}

// underlayType are the link types the last resort considers: network interfaces, not the
// devices overlays and containers make (tun/tap, wireguard, bridges such as weft-br0 or
// cni0, whose MTU is an overlay's and would shrink this one at every restart).
var underlayType = map[string]bool{"device": true, "veth": true, "vlan": true, "bond": true, "macvlan": true, "ipvlan": true}

// sortedKeys is the union of the keys of the maps, in order.
func sortedKeys(ms ...map[int]bool) []int {
	var out []int
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}
