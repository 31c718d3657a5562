package rootless

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/netproxy"
	"github.com/weftnet/weft/usernet"
)

// Config is the part of the agent's (validated) configuration the services read.
type Config struct {
	// Proxy configures the loopback SOCKS5 and HTTP proxies.
	Proxy config.NetstackProxyConfig
	// Forward are the local ports relayed to overlay destinations.
	Forward []config.ForwardConfig
	// Expose are the overlay ports relayed to local addresses.
	Expose []config.ExposeConfig
	// ClusterCIDR is the overlay range: its addresses are always destinations.
	ClusterCIDR netip.Prefix
	// DNS is the DNS section: its domain is what the proxies resolve, its "overlay:PORT"
	// listeners are served inside the stack.
	DNS config.DNSConfig
}

// ConfigOf takes the services' Config from the agent's validated configuration.
func ConfigOf(c config.Config) Config {
	return Config{Proxy: c.NetstackProxy, Forward: c.Forward, Expose: c.Expose,
		ClusterCIDR: c.ClusterCIDR.Prefix, DNS: c.DNS}
}

// Deps is what the services take from the agent.
type Deps struct {
	// Logger logs the services' control path.
	Logger *slog.Logger
	// Stack is the started netstack datapath's userspace stack.
	Stack *usernet.Device
	// Address is this host's overlay address in the stack.
	Address netip.Addr
	// Counters counts what the proxies, forwards and exposes carry and refuse (the
	// datapath's, so that `weft status` and the metrics show them).
	Counters *netproxy.Counters
	// Catalog resolves names and answers DNS; nil when the catalog is not running.
	Catalog catalog.DNSSource
	// HasPeer reports whether some peer is allowed addr (a destination outside ClusterCIDR).
	HasPeer func(addr netip.Addr) bool
}

// Start starts the proxies, forwards, exposes and the overlay DNS listener; it returns what
// stops them.
func Start(cfg Config, deps Deps) (stop func(), err error) {
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
	log := deps.Logger
	r := &resolver{domain: cfg.DNS.Domain, clusterCIDR: cfg.ClusterCIDR, cat: deps.Catalog, hasPeer: deps.HasPeer}
	onet := overlayNet{n: deps.Stack, addr: deps.Address}
	pc := cfg.Proxy
	password := ""
	if pc.PasswordFile != "" {
		if password, err = readSecretFile("netstack_proxy.password_file", pc.PasswordFile); err != nil {
			return nil, err
		}
	}
	lim := netproxy.Limits{MaxConns: pc.MaxConns}
	cnt := deps.Counters
	if pc.SOCKS5 != "" {
		ln, err := net.Listen("tcp", pc.SOCKS5)
		if err != nil {
			return nil, fmt.Errorf("netstack_proxy.socks5 %s: %w", pc.SOCKS5, err)
		}
		s, err := netproxy.ServeSOCKS5(ln, netproxy.SOCKS5Config{Network: onet, Resolve: r.resolve,
			Username: pc.Username, Password: password, Limits: lim, Logger: log, Counters: cnt})
		if err != nil {
			ln.Close()
			return nil, err
		}
		closers = append(closers, func() { _ = s.Close() })
		log.Info("socks5 proxy", "listen", ln.Addr().String())
	}
	if pc.HTTP != "" {
		ln, err := net.Listen("tcp", pc.HTTP)
		if err != nil {
			return nil, fmt.Errorf("netstack_proxy.http %s: %w", pc.HTTP, err)
		}
		p, err := netproxy.ServeHTTP(ln, netproxy.HTTPConfig{Network: onet, Resolve: r.resolve,
			Username: pc.Username, Password: password, Limits: lim, Logger: log, Counters: cnt})
		if err != nil {
			ln.Close()
			return nil, err
		}
		closers = append(closers, func() { _ = p.Close() })
		log.Info("http proxy", "listen", ln.Addr().String())
	}
	for i, f := range cfg.Forward {
		c, err := startForward(onet, r, f, lim, log, cnt)
		if err != nil {
			return nil, fmt.Errorf("forward[%d] %s: %w", i, f.Listen, err)
		}
		closers = append(closers, c)
	}
	for i, e := range cfg.Expose {
		c, err := startExpose(onet, e, lim, log, cnt)
		if err != nil {
			return nil, fmt.Errorf("expose[%d] port %d: %w", i, e.Port, err)
		}
		closers = append(closers, c)
	}
	if deps.Catalog != nil && !cfg.DNS.Disabled {
		for _, l := range cfg.DNS.Listen {
			if port, ok := strings.CutPrefix(l, "overlay:"); ok {
				c, err := serveOverlayDNS(cfg.DNS, deps.Catalog, log, deps.Stack, netip.AddrPortFrom(deps.Address, dnsPort(port)))
				if err != nil {
					return nil, err
				}
				closers = append(closers, c)
			}
		}
	}
	return stop, nil
}

// dnsPort is the port of an "overlay:PORT" listener (validated; 53 otherwise).
func dnsPort(s string) uint16 {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 53
	}
	return uint16(p)
}

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

// startForward: a loopback listener whose traffic goes to an overlay destination, resolved
// per connection (TCP) or per session (UDP).
func startForward(onet overlayNet, r *resolver, f config.ForwardConfig, lim netproxy.Limits, log *slog.Logger, cnt *netproxy.Counters) (func(), error) {
	host, port, err := net.SplitHostPort(f.To)
	if err != nil {
		return nil, err
	}
	p, _ := strconv.ParseUint(port, 10, 16) // validated
	dst := func(ctx context.Context) (netip.AddrPort, error) {
		ip, err := r.resolve(ctx, host)
		return netip.AddrPortFrom(ip, uint16(p)), err
	}
	switch f.Proto {
	case "udp":
		pc, err := net.ListenPacket("udp", f.Listen)
		if err != nil {
			return nil, err
		}
		rl := netproxy.RelayUDP(pc, func(ctx context.Context) (net.Conn, error) {
			ap, err := dst(ctx)
			if err != nil {
				return nil, err
			}
			return onet.DialUDP(ap)
		}, lim, log, cnt)
		log.Info("forward", "listen", pc.LocalAddr().String(), "to", f.To, "proto", "udp")
		return func() { _ = rl.Close() }, nil
	default:
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			return nil, err
		}
		rl := netproxy.RelayTCP(ln, func(ctx context.Context) (net.Conn, error) {
			ap, err := dst(ctx)
			if err != nil {
				return nil, err
			}
			return onet.DialTCP(ctx, ap)
		}, lim, log, cnt)
		log.Info("forward", "listen", ln.Addr().String(), "to", f.To, "proto", "tcp")
		return func() { _ = rl.Close() }, nil
	}
}

// startExpose: a port on the overlay address whose traffic goes to a local address.
func startExpose(onet overlayNet, e config.ExposeConfig, lim netproxy.Limits, log *slog.Logger, cnt *netproxy.Counters) (func(), error) {
	at := netip.AddrPortFrom(onet.addr, uint16(e.Port))
	switch e.Proto {
	case "udp":
		pc, err := onet.n.ListenUDP(at)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayUDP(pc, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", e.To)
		}, lim, log, cnt)
		log.Info("expose", "port", e.Port, "to", e.To, "proto", "udp")
		return func() { _ = r.Close() }, nil
	default:
		ln, err := onet.n.ListenTCP(at)
		if err != nil {
			return nil, err
		}
		r := netproxy.RelayTCP(ln, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", e.To)
		}, lim, log, cnt)
		log.Info("expose", "port", e.Port, "to", e.To, "proto", "tcp")
		return func() { _ = r.Close() }, nil
	}
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
