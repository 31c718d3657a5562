package agent

// The agent's side of the Consul-compatible API (catalog/consul.go): the listeners of
// consul_api.listen ("overlay:PORT" being the overlay address, rebound when it moves), the
// token read from consul_api.token_file, and the gossip members handed to the handler
// through catalog.ConsulMembers so that catalog needs no membership import.

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/weftnet/weft/discovery/catalog"
)

// consulMembers adapts the agent's member list to catalog.ConsulMembers.
type consulMembers struct{ a *Agent }

func (m consulMembers) ConsulMembers() []catalog.ConsulMember {
	var out []catalog.ConsulMember
	for _, mb := range m.a.Members() {
		ap, _ := netip.ParseAddrPort(mb.Addr)
		out = append(out, catalog.ConsulMember{Name: mb.Name, Addr: ap, Status: mb.Status})
	}
	return out
}

// readTokenFile reads a token file that only its owner may read.
func readTokenFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("consul_api.token_file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("consul_api.token_file %s is readable by group or others (mode %o): run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("consul_api.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("consul_api.token_file %s: the token is %d bytes, want at least 16 (e.g. uuidgen > %s)", path, len(tok), path)
	}
	return tok, nil
}

// startConsul serves the Consul API when consul_api.listen is set.
func (g *catalogGlue) startConsul(addr netip.Addr) error {
	a := g.a
	c := a.cfg.ConsulAPI
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
	if a.cfg.ClusterCIDR.IsValid() {
		allowed = append(allowed, a.cfg.ClusterCIDR.Prefix)
	}
	if a.subnet.IsValid() {
		allowed = append(allowed, a.subnet)
	}
	if !addr.IsValid() {
		allowed = nil
	}
	h, err := catalog.NewConsulHandler(catalog.ConsulConfig{
		Node: a.cfg.Name, Datacenter: c.Datacenter, Token: tok, AllowedSources: allowed,
		Members: consulMembers{a}, Version: Version, Logger: a.log,
	}, g.cat)
	if err != nil {
		return fmt.Errorf("consul_api: %w", err)
	}
	var listen []string
	for _, l := range c.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			l = netip.AddrPortFrom(addr, mustPort(port)).String()
		}
		listen = append(listen, l)
	}
	srv, err := catalog.NewConsulServer(listen, h, a.log)
	if err != nil {
		return fmt.Errorf("consul_api.listen %v: %w (set consul_api.listen to a free address)", listen, err)
	}
	g.mu.Lock()
	g.consul = srv
	g.mu.Unlock()
	a.log.Info("consul api", "listen", srv.Addrs(), "datacenter", c.Datacenter, "token", tok != "")
	return nil
}

// stopConsul shuts the listeners; blocking queries are cut after two seconds.
func (g *catalogGlue) stopConsul() {
	takeShutdown(&g.mu, &g.consul)
}

// rebindConsul restarts the listeners after the overlay address moved.
func (g *catalogGlue) rebindConsul(addr netip.Addr) {
	g.mu.Lock()
	had := g.consul != nil
	g.mu.Unlock()
	if !had {
		return
	}
	g.stopConsul()
	if err := g.startConsul(addr); err != nil {
		g.a.log.Error("consul api after the overlay address moved", "err", err)
		g.a.problem("consul api is not serving: " + err.Error())
	}
}
