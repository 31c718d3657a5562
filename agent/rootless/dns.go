package rootless

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/usernet"
)

// serveOverlayDNS answers the catalog on the overlay address inside the netstack (UDP and
// TCP), for the other hosts; the host's own DNS listeners are the catalog glue's.
func serveOverlayDNS(c config.DNSConfig, cat catalog.DNSSource, log *slog.Logger, n *usernet.Device, at netip.AddrPort) (func(), error) {
	dc := catalog.DefaultDNSConfig()
	dc.Listen = []string{at.String()} // never bound on the host: the handler only
	dc.Domain = c.Domain
	if c.TTL.Duration > 0 {
		dc.TTL = c.TTL.Duration
	}
	dc.Upstream = c.Upstream
	dc.Logger = log
	h, err := catalog.NewDNSServer(dc, cat)
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
	log.Info("dns in the netstack", "listen", at.String())
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
