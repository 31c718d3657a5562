package services

// The Consul-compatible API (discovery/catalog/consul.go): the listeners of
// consul_api.listen ("overlay:PORT" being the overlay address, rebound when it moves), the
// token read from consul_api.token_file (every write then needs it, from this host too),
// the warning when writes are open to every local user, and the gossip members handed to
// the handler through catalog.ConsulMembers so that catalog needs no membership import.

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/httpguard"
	"github.com/weftnet/weft/discovery/catalog"
)

// consulMembers adapts the agent's member list to catalog.ConsulMembers.
type consulMembers func() []api.Member

func (members consulMembers) ConsulMembers() []catalog.ConsulMember {
	var out []catalog.ConsulMember
	for _, mb := range members() {
		ap, _ := netip.ParseAddrPort(mb.Addr)
		out = append(out, catalog.ConsulMember{Name: mb.Name, Addr: ap, Status: mb.Status})
	}
	return out
}

// readTokenFile reads consul_api.token_file (the rule shared by every token of the agent).
func readTokenFile(path string) (string, error) {
	return httpguard.ReadTokenFile("consul_api.token_file", path)
}

// ConsulTokenWarning is what `weft agent --check` and the startup log say when the Consul
// API takes writes with no token: from any local user, over a loopback listener (an
// address that is loopback, all interfaces, or a name). "" when a token is configured or
// no listener is reachable over loopback (overlay:PORT or another address only: writes are
// then refused, since none carries a token).
func ConsulTokenWarning(c config.ConsulAPIConfig) string {
	if c.TokenFile != "" {
		return ""
	}
	for _, l := range c.Listen {
		if strings.HasPrefix(l, "overlay:") {
			continue
		}
		host, _, err := net.SplitHostPort(l)
		if a, perr := netip.ParseAddr(host); err == nil && perr == nil && !a.IsLoopback() && !a.IsUnspecified() {
			continue
		}
		return fmt.Sprintf("consul_api.listen %s takes writes with no token: any local user can register or deregister "+
			"this host's services (and receive their traffic); set consul_api.token_file (writes then need the token, "+
			"from this host too) or listen on overlay:PORT only", l)
	}
	return ""
}

// startConsul serves the Consul API when consul_api.listen is set.
func (s *Server) startConsul(addr netip.Addr) error {
	c := s.cfg.ConsulAPI
	if len(c.Listen) == 0 {
		return nil
	}
	var tok string
	if c.TokenFile != "" {
		var err error
		if tok, err = readTokenFile(c.TokenFile); err != nil {
			return err
		}
	}
	var allowed []netip.Prefix
	if s.cfg.ClusterCIDR.IsValid() {
		allowed = append(allowed, s.cfg.ClusterCIDR.Prefix)
	}
	if sn := s.d.Subnet(); sn.IsValid() {
		allowed = append(allowed, sn)
	}
	if !addr.IsValid() {
		allowed = nil
	}
	h, err := catalog.NewConsulHandler(catalog.ConsulConfig{
		Node: s.cfg.Name, Datacenter: c.Datacenter, Token: tok, AllowedSources: allowed,
		Members: consulMembers(s.d.Members), Version: s.d.Version, Logger: s.log,
		Refused: func(reason string) { s.d.Refused("consul_api", reason) },
	}, s.cat)
	if err != nil {
		return fmt.Errorf("consul_api: %w", err)
	}
	var listen []string
	for _, l := range c.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			l = netip.AddrPortFrom(addr, PortOf(port)).String()
		}
		listen = append(listen, l)
	}
	srv, err := catalog.NewConsulServer(listen, h, s.log)
	if err != nil {
		return fmt.Errorf("consul_api.listen %v: %w (set consul_api.listen to a free address)", listen, err)
	}
	s.mu.Lock()
	s.consul = srv
	s.mu.Unlock()
	s.log.Info("consul api", "listen", srv.Addrs(), "datacenter", c.Datacenter, "token", tok != "")
	if w := ConsulTokenWarning(c); w != "" {
		s.log.Warn(w)
	}
	return nil
}

// stopConsul shuts the listeners; blocking queries are cut after two seconds.
func (s *Server) stopConsul() {
	takeShutdown(&s.mu, &s.consul)
}

// rebindConsul restarts the listeners after the overlay address moved.
func (s *Server) rebindConsul(addr netip.Addr) {
	s.mu.Lock()
	had := s.consul != nil
	s.mu.Unlock()
	if !had {
		return
	}
	s.stopConsul()
	if err := s.startConsul(addr); err != nil {
		s.log.Error("consul api after the overlay address moved", "err", err)
		s.d.Problem("consul api is not serving: " + err.Error())
	}
}
