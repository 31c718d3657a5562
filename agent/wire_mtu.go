package agent

import (
	"log/slog"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/underlay"
	"github.com/weftnet/weft/tunnel"
)

// The overlay MTU follows the underlay (ARCHITECTURE.md, "MTU"). Before resolving the
// configuration, the agent finds the link that carries its data port's traffic in the
// host's routing table (package underlay: the route toward the static peers and the gossip
// join addresses, else the link of the gossip bind/advertise address, else the default
// routes; the smallest result wins) and hands it to the configuration with weft's exact
// overhead for the mode and framing over that family (tunnel.Overhead). Resolving then sets
// an unconfigured mtu to what that link carries, and refuses a configured one that does not
// fit. Every lookup is a netlink query: nothing is sent on the network, so `weft agent
// --check` does it too. In netstack mode the usernet device takes the same MTU.

// FollowUnderlay finds the underlay of cfg's data port traffic in the host's routing table
// and hands it to cfg (config.Config.SetUnderlay): resolving cfg (Validate, Check) then
// makes an unconfigured mtu follow it and refuses a configured mtu it cannot carry. When
// nothing is found cfg keeps the 1500-byte assumption (config.DefaultMTU); agent.New logs
// which it was.
func FollowUnderlay(cfg *config.Config) {
	followUnderlay(cfg, newUnderlayLookup())
}

// newUnderlayLookup is the routing table the agent reads: the namespace it runs in.
var newUnderlayLookup = func() underlay.Lookup { return underlay.Netlink(&netlink.Handle{}) }

// followUnderlay is FollowUnderlay over look; it returns what the lookup found, for the log.
func followUnderlay(cfg *config.Config, look underlay.Lookup) underlay.Result {
	f := framingOf(cfg.Mode, cfg.Encryption)
	r := look.Find(underlayTargets(cfg), func(v6 bool) int { return tunnel.Overhead(f, v6) })
	var u config.Underlay
	if r.Found {
		u = config.Underlay{Interface: r.Best.Interface, MTU: r.Best.MTU, IPv6: r.Best.IPv6, Overhead: r.Best.Overhead}
	}
	cfg.SetUnderlay(u)
	return r
}

// framingOf is the framing of the device's packets in mode and encryption (a mode not yet
// validated counts as l3; Resolve reports it). Stock WireGuard peers' framing is smaller
// than l3's, so l3's is the one the device MTU must fit.
func framingOf(mode, encryption string) tunnel.Framing {
	switch {
	case mode == "l2" && encryption == "none":
		return tunnel.FramingPlainL2
	case mode == "l2":
		return tunnel.FramingL2
	default:
		return tunnel.FramingL3
	}
}

// underlayTargets are the addresses cfg names on the underlay: its static peers' endpoints
// and gossip join addresses (IP literals only: resolving a name would send a query), and
// the gossip bind and advertise addresses.
func underlayTargets(cfg *config.Config) underlay.Targets {
	var t underlay.Targets
	for _, p := range cfg.Peers {
		if p.Endpoint.IsValid() {
			t.Peers = append(t.Peers, p.Endpoint.Addr())
		}
	}
	if cfg.Gossip.Disabled {
		return t
	}
	ip := func(hostport string) (netip.Addr, bool) {
		host, _, err := config.SplitHostPort(hostport, 0)
		if err != nil {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		return a, err == nil
	}
	for _, s := range append(append([]string(nil), cfg.Gossip.Join...), cfg.Gossip.RetryJoin...) {
		if a, ok := ip(s); ok {
			t.Peers = append(t.Peers, a)
		}
	}
	for _, s := range []string{cfg.Gossip.Advertise, cfg.Gossip.Bind} {
		if a, ok := ip(s); ok {
			t.Local = append(t.Local, a)
		}
	}
	return t
}

// logMTU says at start which MTU the overlay runs with and why; a warning when no underlay
// was found and the 1500-byte assumption stands.
func logMTU(log *slog.Logger, cfg *config.Config, r underlay.Result) {
	u := cfg.Underlay()
	switch {
	case cfg.MTUFollowsUnderlay() && u.Found():
		log.Info("overlay mtu", "mtu", cfg.MTU, "underlay_if", u.Interface, "underlay_mtu", u.MTU,
			"family", u.Family(), "overhead", u.Overhead, "via", r.Best.Via)
	case cfg.MTUFollowsUnderlay():
		log.Warn("overlay mtu: no underlay found (no route toward the peers, no link holding the bind address, no default route); "+
			"assuming "+strings.TrimPrefix(cfg.MTUSource(), "assumed: no underlay found, ")+": set mtu if the network's is smaller",
			"mtu", cfg.MTU, "tried", strings.Join(r.Failed, "; "))
	case u.Found():
		log.Info("overlay mtu", "mtu", cfg.MTU, "source", "configured", "underlay_if", u.Interface, "underlay_mtu", u.MTU,
			"family", u.Family(), "overhead", u.Overhead, "at_most", u.Fit())
	default:
		log.Info("overlay mtu", "mtu", cfg.MTU, "source", "configured", "underlay", "not found")
	}
}
