package rootless

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/netproxy"
)

// resolver is the proxies' and forwards' netproxy.Resolver: overlay names through the
// catalog, overlay literals as they are, anything else refused.
type resolver struct {
	domain      string            // the DNS zone, e.g. "weft."
	clusterCIDR netip.Prefix      // always the overlay
	cat         catalog.DNSSource // nil: the catalog is not running
	hasPeer     func(netip.Addr) bool
}

func (r *resolver) resolve(_ context.Context, host string) (netip.Addr, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if r.inOverlay(ip) {
			return ip, nil
		}
		return netip.Addr{}, fmt.Errorf("%s: %w (netstack mode reaches overlay addresses only)", ip, netproxy.ErrNotAllowed)
	}
	zone := strings.TrimSuffix(r.domain, ".")
	rel, ok := strings.CutSuffix(host, "."+zone)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%s: %w (netstack mode resolves names under %s only)", host, netproxy.ErrNotAllowed, zone)
	}
	if r.cat == nil {
		return netip.Addr{}, fmt.Errorf("%s: %w (the catalog is not running)", host, netproxy.ErrUnknownName)
	}
	labels := strings.Split(rel, ".")
	if len(labels) >= 2 {
		switch labels[len(labels)-1] {
		case "service":
			// NAME.service.weft, or TAG.NAME.service.weft as DNS answers it.
			name := labels[len(labels)-2]
			var tag string
			if len(labels) == 3 {
				tag = labels[0]
			}
			var ok []catalog.Instance
			for _, in := range r.cat.Instances(name, true) {
				if tag == "" || hasTag(in.Service.Tags, tag) {
					ok = append(ok, in)
				}
			}
			if len(labels) <= 3 && len(ok) > 0 {
				return ok[rand.IntN(len(ok))].Addr, nil
			}
		case "node":
			if len(labels) == 2 {
				if addr, found := r.cat.NodeAddr(labels[0]); found {
					return addr, nil
				}
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", host, netproxy.ErrUnknownName)
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if strings.EqualFold(x, t) {
			return true
		}
	}
	return false
}

// inOverlay: inside cluster_cidr, or inside a prefix some peer is allowed.
func (r *resolver) inOverlay(ip netip.Addr) bool {
	if r.clusterCIDR.Contains(ip) {
		return true
	}
	return r.hasPeer(ip)
}
