package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
)

// Tags is the gossip node's tag set the catalog publishes into (a *membership.Cluster).
type Tags interface {
	// SetTag sets one tag; membership.ErrTagBudget when the tags would not fit.
	SetTag(key, value string) error
	// TagBytes is the encoded size of the tags set now.
	TagBytes() int
}

// Deps is what the subsystem needs of the agent.
type Deps struct {
	// Config is the agent's configuration at start; read are Name, StateDir, Services (at
	// Start only: a reload registers through Catalog), DNS, ConsulAPI, ClusterCIDR, Subnet
	// and Netstack, which no reload changes.
	Config config.Config
	// Address is this host's overlay address now.
	Address func() netip.Addr
	// Subnet is this host's overlay subnet now (invalid: none).
	Subnet func() netip.Prefix
	// Tags is where the catalog is published; nil without gossip (the catalog stays local).
	Tags Tags
	// Trusted reports whether the trust layer accepts a member's claims (with a CA: a valid
	// certificate); the services of any other member are not answered. nil: every member is.
	Trusted func(name string) bool
	// Members lists the gossip members, for the Consul API's /v1/agent/members. nil: none.
	Members func() []api.Member
	// Clients answers NAME.client.DOMAIN in DNS (the stock WireGuard clients). nil: none.
	Clients func(name string) (netip.Addr, bool)
	// HostResolver points the host's resolver at the DNS server just started on addrs,
	// overlay being the overlay address, and returns what reverts that (nil: nothing to
	// revert). nil: the host's resolver is left alone.
	HostResolver func(addrs []netip.AddrPort, overlay netip.Addr) (revert func())
	// Version is the agent's version, as the Consul API reports it.
	Version string
	// Logger logs; nil discards.
	Logger *slog.Logger
	// Problem records a condition shown by `weft status` until the agent restarts. nil: none.
	Problem func(msg string)
	// Refused counts a request an HTTP listener refused (the Consul API's: listener
	// "consul_api"), by reason. nil: not counted.
	Refused func(listener, reason string)
}

// Server runs the service catalog, its DNS server and the Consul API. Remote services
// arrive in members' catalog tags; a member's overlay address is the first address of its
// subnet (the agent's default address), which is what DNS answers.
type Server struct {
	d   Deps
	cfg *config.Config
	log *slog.Logger
	cat *catalog.Catalog

	mu       sync.Mutex
	dns      *catalog.DNSServer    // replaced when the overlay address moves
	consul   *catalog.ConsulServer // nil unless consul_api.listen is set
	resolved func()                // reverts the host resolver's configuration (Deps.HostResolver)
}

// Start starts the catalog with the configured services, its DNS server (a DNS port
// already taken is a problem reported, not an error) and the Consul API.
func Start(d Deps) (*Server, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Problem == nil {
		d.Problem = func(string) {}
	}
	if d.Trusted == nil {
		d.Trusted = func(string) bool { return true }
	}
	if d.Members == nil {
		d.Members = func() []api.Member { return nil }
	}
	if d.Refused == nil {
		d.Refused = func(string, string) {}
	}
	s := &Server{d: d, cfg: &d.Config, log: d.Logger}
	publish := func(v string) error {
		if d.Tags == nil {
			return nil
		}
		if err := d.Tags.SetTag(catalog.CatalogTagKey, v); err != nil {
			if errors.Is(err, membership.ErrTagBudget) {
				return fmt.Errorf("%w: %w", catalog.ErrCatalogFull, err)
			}
			return err
		}
		return nil
	}
	// The catalog gets what Serf's 512-byte metadata leaves after the node-info tag, less
	// the msgpack framing of one more key and string.
	budget := catalog.DefaultCatalogBudget
	if d.Tags != nil {
		budget = min(budget, membership.TagBudget-d.Tags.TagBytes()-6)
	}
	addr := d.Address()
	cat, err := catalog.NewCatalog(catalog.CatalogConfig{
		Node:       s.cfg.Name,
		Addr:       addr,
		Publish:    publish,
		StatePath:  filepath.Join(s.cfg.StateDir, "services.json"),
		Logger:     s.log,
		Budget:     budget,
		SubnetBits: s.cfg.SubnetLen,
	})
	if err != nil {
		return nil, fmt.Errorf("service catalog: %w", err)
	}
	s.cat = cat
	for _, svc := range s.cfg.Services {
		if err := cat.Register(svc); err != nil {
			cat.Close()
			return nil, fmt.Errorf("services: %s: %w", svc.Name, err)
		}
	}
	if !s.cfg.DNS.Disabled && len(s.cfg.DNS.Listen) > 0 {
		// A DNS port already taken (another resolver on :53) must not keep the overlay
		// down: serve without DNS and say so in the log and in `weft status`.
		if err := s.startDNS(addr); err != nil {
			s.log.Error("dns is not serving; the overlay stays up", "err", err)
			s.d.Problem("dns is not serving: " + err.Error())
		} else {
			s.setupResolver(addr)
		}
	}
	if err := s.startConsul(addr); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Catalog is the running catalog (policy, reload and the netstack's resolver read it).
func (s *Server) Catalog() *catalog.Catalog { return s.cat }

// Close stops the Consul API and DNS, reverts the host resolver and closes the catalog.
func (s *Server) Close() {
	s.stopConsul()
	s.revertResolver()
	takeShutdown(&s.mu, &s.dns)
	_ = s.cat.Close()
}

// Rebind restarts the DNS server and the Consul API on addr after the overlay address
// moved (their old address is gone).
func (s *Server) Rebind(addr netip.Addr) {
	defer s.rebindConsul(addr)
	if !takeShutdown(&s.mu, &s.dns) {
		return
	}
	if err := s.startDNS(addr); err != nil {
		s.log.Error("dns after the overlay address moved", "err", err)
		s.d.Problem("dns is not serving: " + err.Error())
		return
	}
	s.setupResolver(addr)
}

// MemberEvent keeps the remote part of the catalog in step with membership.
func (s *Server) MemberEvent(ev membership.Event) {
	m := ev.Member
	switch ev.Type {
	case membership.EventJoin, membership.EventUpdate:
	case membership.EventLeave, membership.EventFailed, membership.EventReap:
		if m.Name != s.cfg.Name {
			s.cat.RemoveNode(m.Name)
		}
		return
	default:
		return
	}
	s.SyncMember(m)
}

// SyncMember sets the member's services from its catalog tag, or removes them when it is
// not alive, has no valid subnet or is not trusted. This host is left alone.
func (s *Server) SyncMember(m membership.Member) {
	if m.Name == s.cfg.Name {
		return
	}
	if m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
		s.cat.RemoveNode(m.Name)
		return
	}
	if !s.d.Trusted(m.Name) {
		// Its claims are refused, or were never judged (another mode or VNI, no
		// certificate): its services are not answered either.
		s.cat.RemoveNode(m.Name)
		return
	}
	addr := m.Info.Subnet.Masked().Addr().Next()
	if err := s.cat.UpdateNode(m.Name, addr, m.Tags[catalog.CatalogTagKey]); err != nil {
		s.log.Warn("member's catalog tag", "member", m.Name, "err", err)
	}
}

// takeShutdown takes the server *srv out from under mu, leaving nil, and shuts it down,
// giving its requests in flight two seconds. It reports whether there was a server.
func takeShutdown[T any, P interface {
	*T
	Shutdown(context.Context) error
}](mu *sync.Mutex, srv **T) bool {
	mu.Lock()
	s := *srv
	*srv = nil
	mu.Unlock()
	if s == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = P(s).Shutdown(ctx)
	cancel()
	return true
}
