package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

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
