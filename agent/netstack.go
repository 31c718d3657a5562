package agent

// Netstack mode (rootless): the L3 datapath runs over package usernet, a batched
// tun.Device backed by gVisor's userspace TCP/IP stack, so the batched tunnel loop is the
// same as with a TUN while nothing needs root: no /dev/net/tun, no netlink, no routes. The
// host reaches the overlay only through what this file starts on loopback (the netproxy
// package): a SOCKS5 and an HTTP proxy and the configured forwards; the overlay reaches the
// host through the exposes (an overlay port relayed to a local address). DNS answers for other
// hosts ("overlay:PORT" in dns.listen) are served inside the netstack.
//
// Destinations are overlay-only: a proxy or forward resolves NAME.service.weft (a passing
// instance, chosen at random) and HOST.node.weft through the catalog, accepts address literals
// inside cluster_cidr or a peer's allowed prefixes, and refuses everything else (the netstack
// has no route to the Internet; the host's own network is the host's business).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/netproxy"
	"github.com/weftnet/weft/usernet"
)

// nsPath is encrypted L3 over the netstack device.
type nsPath struct {
	encrypted
	net *usernet.Device
	// proxied counts what the proxies, forwards and exposes carried and refused, by
	// reason; `weft status` shows it among the datapath counters.
	proxied netproxy.Counters
}

var _ datapath = (*nsPath)(nil)

func (d *nsPath) start() (uint16, error) {
	a := d.a
	dev, err := usernet.New([]netip.Addr{a.address}, a.cfg.MTU)
	if err != nil {
		return 0, fmt.Errorf("netstack: %w", err)
	}
	d.net = dev
	return d.startTunnel(dev, a.cfg.MTU, nil)
}

// addStatic: no kernel routes; the netstack's default route leads into the tunnel, which
// routes by the peers' allowed prefixes.
func (d *nsPath) addStatic(p config.PeerConfig) error {
	_, err := d.upsertStatic(p, false)
	return err
}

func (d *nsPath) addMember(mp memberPeer, subnet netip.Prefix) error {
	_, err := d.upsertMember(mp, []netip.Prefix{subnet})
	return err
}

func (d *nsPath) removeMember(mp memberPeer) { d.a.table.Remove(mp.key) }

func (d *nsPath) stats() (map[string]uint64, map[string]uint64) {
	drops, _ := d.encrypted.stats()
	return drops, d.proxied.Snapshot()
}

func (d *nsPath) fdb(func(crypto.PublicKey) string) []api.FDBEntry { return []api.FDBEntry{} }

// overlayNet is the netproxy.Network of the netstack, bound to the overlay address.
type overlayNet struct {
	n    *usernet.Device
	addr netip.Addr
}

func (o overlayNet) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	return o.n.DialTCP(ctx, dst)
}

func (o overlayNet) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	return o.n.DialUDP(netip.AddrPortFrom(o.addr, 0), dst)
}

func (o overlayNet) ListenUDP() (net.PacketConn, error) {
	return o.n.ListenUDP(netip.AddrPortFrom(o.addr, 0))
}

// resolve is the proxies' Resolver: overlay names through the catalog, overlay literals as
// they are, anything else refused.
func (a *Agent) resolve(_ context.Context, host string) (netip.Addr, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if a.inOverlay(ip) {
			return ip, nil
		}
		return netip.Addr{}, fmt.Errorf("%s: %w (netstack mode reaches overlay addresses only)", ip, netproxy.ErrNotAllowed)
	}
	zone := strings.TrimSuffix(a.cfg.DNS.Domain, ".")
	rel, ok := strings.CutSuffix(host, "."+zone)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%s: %w (netstack mode resolves names under %s only)", host, netproxy.ErrNotAllowed, zone)
	}
	if a.cat == nil {
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
			for _, in := range a.cat.cat.Instances(name, true) {
				if tag == "" || hasTag(in.Service.Tags, tag) {
					ok = append(ok, in)
				}
			}
			if len(labels) <= 3 && len(ok) > 0 {
				return ok[rand.IntN(len(ok))].Addr, nil
			}
		case "node":
			if len(labels) == 2 {
				if addr, found := a.cat.cat.NodeAddr(labels[0]); found {
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
func (a *Agent) inOverlay(ip netip.Addr) bool {
	if a.cfg.ClusterCIDR.Contains(ip) {
		return true
	}
	return a.table != nil && a.table.Lookup(ip) != nil
}

// startNetstackServices starts the proxies, forwards, exposes and the overlay DNS listener
// of netstack mode; it returns what stops them. Outside netstack mode it does nothing.
func (a *Agent) startNetstackServices() (stop func(), err error) {
	d, ok := a.dp.(*nsPath)
	if !ok {
		return func() {}, nil
	}
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	onet := overlayNet{n: d.net, addr: a.address}
	pc := a.cfg.NetstackProxy
	password := ""
	if pc.PasswordFile != "" {
		if password, err = readSecretFile("netstack_proxy.password_file", pc.PasswordFile); err != nil {
			return nil, err
		}
	}
	lim := netproxy.Limits{MaxConns: pc.MaxConns}
	cnt := &d.proxied
	if pc.SOCKS5 != "" {
		ln, err := net.Listen("tcp", pc.SOCKS5)
		if err != nil {
			return nil, fmt.Errorf("netstack_proxy.socks5 %s: %w", pc.SOCKS5, err)
		}
		s, err := netproxy.ServeSOCKS5(ln, netproxy.SOCKS5Config{Network: onet, Resolve: a.resolve,
			Username: pc.Username, Password: password, Limits: lim, Logger: a.log, Counters: cnt})
		if err != nil {
			ln.Close()
			return nil, err
		}
		closers = append(closers, func() { _ = s.Close() })
		a.log.Info("socks5 proxy", "listen", ln.Addr().String())
	}
	if pc.HTTP != "" {
		ln, err := net.Listen("tcp", pc.HTTP)
		if err != nil {
			return nil, fmt.Errorf("netstack_proxy.http %s: %w", pc.HTTP, err)
		}
		p, err := netproxy.ServeHTTP(ln, netproxy.HTTPConfig{Network: onet, Resolve: a.resolve,
			Username: pc.Username, Password: password, Limits: lim, Logger: a.log, Counters: cnt})
		if err != nil {
			ln.Close()
			return nil, err
		}
		closers = append(closers, func() { _ = p.Close() })
		a.log.Info("http proxy", "listen", ln.Addr().String())
	}
	for i, f := range a.cfg.Forward {
		c, err := a.startForward(onet, f, lim, cnt)
		if err != nil {
			return nil, fmt.Errorf("forward[%d] %s: %w", i, f.Listen, err)
		}
		closers = append(closers, c)
	}
	for i, e := range a.cfg.Expose {
		c, err := a.startExpose(onet, e, lim, cnt)
		if err != nil {
			return nil, fmt.Errorf("expose[%d] port %d: %w", i, e.Port, err)
		}
		closers = append(closers, c)
	}
	if a.cat != nil && !a.cfg.DNS.Disabled {
		for _, l := range a.cfg.DNS.Listen {
			if port, ok := strings.CutPrefix(l, "overlay:"); ok {
				c, err := a.serveOverlayDNS(d.net, netip.AddrPortFrom(a.address, mustPort(port)))
				if err != nil {
					return nil, err
				}
				closers = append(closers, c)
			}
		}
	}
	return stop, nil
}

// startForward: a loopback listener whose traffic goes to an overlay destination, resolved
// per connection (TCP) or per session (UDP).
func (a *Agent) startForward(onet overlayNet, f config.ForwardConfig, lim netproxy.Limits, cnt *netproxy.Counters) (func(), error) {
	host, port, err := net.SplitHostPort(f.To)
	if err != nil {
		return nil, err
	}
	p, _ := strconv.ParseUint(port, 10, 16) // validated
	dst := func(ctx context.Context) (netip.AddrPort, error) {
		ip, err := a.resolve(ctx, host)
		return netip.AddrPortFrom(ip, uint16(p)), err
	}
	switch f.Proto {
	case "udp":
		pc, err := net.ListenPacket("udp", f.Listen)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayUDP(pc, func(ctx context.Context) (net.Conn, error) {
			ap, err := dst(ctx)
			if err != nil {
				return nil, err
			}
			return onet.DialUDP(ap)
		}, lim, a.log, cnt)
		a.log.Info("forward", "listen", pc.LocalAddr().String(), "to", f.To, "proto", "udp")
		return func() { _ = r.Close() }, nil
	default:
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayTCP(ln, func(ctx context.Context) (net.Conn, error) {
			ap, err := dst(ctx)
			if err != nil {
				return nil, err
			}
			return onet.DialTCP(ctx, ap)
		}, lim, a.log, cnt)
		a.log.Info("forward", "listen", ln.Addr().String(), "to", f.To, "proto", "tcp")
		return func() { _ = r.Close() }, nil
	}
}

// startExpose: a port on the overlay address whose traffic goes to a local address.
func (a *Agent) startExpose(onet overlayNet, e config.ExposeConfig, lim netproxy.Limits, cnt *netproxy.Counters) (func(), error) {
	at := netip.AddrPortFrom(a.address, uint16(e.Port))
	switch e.Proto {
	case "udp":
		pc, err := onet.n.ListenUDP(at)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayUDP(pc, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", e.To)
		}, lim, a.log, cnt)
		a.log.Info("expose", "port", e.Port, "to", e.To, "proto", "udp")
		return func() { _ = r.Close() }, nil
	default:
		ln, err := onet.n.ListenTCP(at)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayTCP(ln, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", e.To)
		}, lim, a.log, cnt)
		a.log.Info("expose", "port", e.Port, "to", e.To, "proto", "tcp")
		return func() { _ = r.Close() }, nil
	}
}

// serveOverlayDNS answers the catalog on the overlay address inside the netstack (UDP and
// TCP), for the other hosts; the host's own DNS listeners are catalogGlue's.
func (a *Agent) serveOverlayDNS(n *usernet.Device, at netip.AddrPort) (func(), error) {
	dc := catalog.DefaultDNSConfig()
	dc.Listen = []string{at.String()} // never bound on the host: the handler only
	dc.Domain = a.cfg.DNS.Domain
	if a.cfg.DNS.TTL.Duration > 0 {
		dc.TTL = a.cfg.DNS.TTL.Duration
	}
	dc.Upstream = a.cfg.DNS.Upstream
	dc.Logger = a.log
	h, err := catalog.NewDNSServer(dc, a.cat.cat)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	pc, err := n.ListenUDP(at)
	if err != nil {
		return nil, fmt.Errorf("dns listen %s in the netstack: %w", at, err)
	}
	ln, err := n.ListenTCP(at)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns listen %s in the netstack: %w", at, err)
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	done := make(chan struct{}, len(servers))
	for _, s := range servers {
		go func() { _ = s.ActivateAndServe(); done <- struct{}{} }()
	}
	a.log.Info("dns in the netstack", "listen", at.String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range servers {
			if err := s.ShutdownContext(ctx); err != nil {
				// Not started yet or already down: close the sockets so Serve returns.
				pc.Close()
				ln.Close()
			}
		}
		for range servers {
			<-done
		}
	}, nil
}

// readSecretFile reads a one-line secret that must not be readable by group or others.
func readSecretFile(key, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s %s is readable by group or others (mode %o): run chmod 600 %s", key, path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New(key + " " + path + " is empty")
	}
	return s, nil
}
