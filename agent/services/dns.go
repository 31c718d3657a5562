package services

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftnet/weft/discovery/catalog"
)

// startDNS serves the catalog on the configured listen addresses, "overlay:PORT" being the
// overlay address addr.
func (s *Server) startDNS(addr netip.Addr) error {
	cfg := s.cfg
	dc := catalog.DefaultDNSConfig()
	dc.Listen = nil
	for _, l := range cfg.DNS.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			if cfg.Netstack {
				continue // served inside the netstack (the agent's netstack.go)
			}
			l = netip.AddrPortFrom(addr, PortOf(port)).String()
		}
		dc.Listen = append(dc.Listen, l)
	}
	if len(dc.Listen) == 0 {
		return nil
	}
	dc.Domain = cfg.DNS.Domain
	if cfg.DNS.TTL.Duration > 0 {
		dc.TTL = cfg.DNS.TTL.Duration
	}
	dc.Upstream = cfg.DNS.Upstream
	// Forwarding is for this host (loopback, and its overlay address) and the overlay.
	dc.ForwardFrom = []netip.Prefix{cfg.ClusterCIDR.Prefix}
	if sn := cfg.Subnet.Prefix; sn.IsValid() && !cfg.ClusterCIDR.Contains(sn.Addr()) {
		dc.ForwardFrom = append(dc.ForwardFrom, sn)
	}
	if addr.IsValid() {
		dc.ForwardFrom = append(dc.ForwardFrom, netip.PrefixFrom(addr, addr.BitLen()))
	}
	dc.Logger = s.log
	dc.ConsulAlias = cfg.DNS.ConsulAlias
	dc.Clients = s.d.Clients
	if cfg.ClusterCIDR.IsValid() {
		dc.Reverse = []netip.Prefix{cfg.ClusterCIDR.Prefix}
	}
	srv, err := catalog.NewDNSServer(dc, s.cat)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("dns listen %v: %w (set dns.listen, or dns.disabled: true)", dc.Listen, err)
	}
	s.mu.Lock()
	s.dns = srv
	s.mu.Unlock()
	s.log.Info("dns", "listen", srv.Addrs(), "domain", dc.Domain)
	return nil
}

// DNSStats returns the DNS server's forwarding counters (false while none serves).
func (s *Server) DNSStats() (catalog.DNSStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dns == nil {
		return catalog.DNSStats{}, false
	}
	return s.dns.Stats(), true
}

// DNSAddrs are the addresses the DNS server listens on (nil while none serves).
func (s *Server) DNSAddrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dns == nil {
		return nil
	}
	return s.dns.Addrs()
}

// PortOf is the PORT of a listen address "overlay:PORT"; 53 when PORT is no port number.
func PortOf(s string) uint16 {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 53
	}
	return uint16(p)
}

// setupResolver points the host's resolver at the DNS server just started (Deps.HostResolver),
// reverting what an earlier call set up.
func (s *Server) setupResolver(addr netip.Addr) {
	if s.d.HostResolver == nil {
		return
	}
	s.revertResolver()
	s.mu.Lock()
	srv := s.dns
	s.mu.Unlock()
	if srv == nil {
		return
	}
	revert := s.d.HostResolver(srv.Addrs(), addr)
	s.mu.Lock()
	s.resolved = revert
	s.mu.Unlock()
}

func (s *Server) revertResolver() {
	s.mu.Lock()
	f := s.resolved
	s.resolved = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
}
