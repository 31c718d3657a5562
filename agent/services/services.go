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
	"github.com/weftnet/weft/discovery/catalogdist"
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
	// UserEvent broadcasts a gossip user event: a catalog too large for the tag travels in
	// them (discovery/catalogdist). nil: such a catalog cannot be published.
	UserEvent func(name string, payload []byte) error
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
	oob *catalogdist.Dist // catalogs carried out of band, this host's and others'

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
	s.oob = catalogdist.New(catalogdist.Deps{
		UserEvent:   d.UserEvent,
		Apply:       s.applyOutOfBand,
		MaxServices: s.cfg.Catalog.MaxServices,
		MaxBytes:    s.cfg.Catalog.MaxBytes,
		Logger:      s.log,
	})
	addr := d.Address()
	cat, err := catalog.NewCatalog(catalog.CatalogConfig{
		Node:        s.cfg.Name,
		Addr:        addr,
		Publish:     s.publish,
		StatePath:   filepath.Join(s.cfg.StateDir, "services.json"),
		Logger:      s.log,
		MaxBytes:    s.cfg.Catalog.MaxBytes,
		MaxServices: s.cfg.Catalog.MaxServices,
		SubnetBits:  s.cfg.SubnetLen,
	})
	if err != nil {
		return nil, fmt.Errorf("service catalog: %w", err)
	}
	s.cat = cat
	s.oob.Start()
	if err := cat.RegisterAll(s.cfg.Services); err != nil {
		cat.Close()
		s.oob.Close()
		return nil, fmt.Errorf("services: %w", err)
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

// publish sets this host's catalog tag to the catalog's encoding v: in the tag itself while
// it fits what Serf's 512 bytes of metadata leave (DefaultCatalogBudget at most), else a
// digest in the tag and the catalog in user events (discovery/catalogdist).
func (s *Server) publish(v string) error {
	if s.d.Tags == nil {
		return nil
	}
	if len(v) <= catalog.DefaultCatalogBudget {
		err := s.d.Tags.SetTag(catalog.CatalogTagKey, v)
		if err == nil {
			s.oob.Publish(nil)
			return nil
		}
		if !errors.Is(err, membership.ErrTagBudget) || s.d.UserEvent == nil {
			return tagErr(err)
		}
	}
	if s.d.UserEvent == nil {
		return fmt.Errorf("%w: %d bytes do not fit the gossip tag, and without gossip nothing larger can be published; deregister a service", catalog.ErrCatalogFull, len(v))
	}
	enc, err := catalogdist.Encode(v)
	if err != nil {
		return fmt.Errorf("%w: %w; deregister a service or use shorter names and tags", catalog.ErrCatalogFull, err)
	}
	if err := s.d.Tags.SetTag(catalog.CatalogTagKey, enc.Tag()); err != nil {
		return tagErr(err)
	}
	s.oob.Publish(enc)
	return nil
}

func tagErr(err error) error {
	if errors.Is(err, membership.ErrTagBudget) {
		return fmt.Errorf("%w: %w", catalog.ErrCatalogFull, err)
	}
	return err
}

// applyOutOfBand installs a member's catalog that catalogdist assembled and verified
// against the digest tag it announces.
func (s *Server) applyOutOfBand(node, tag string, services []catalog.ServiceHealth) {
	applied, err := s.cat.ApplyNode(node, tag, services)
	if err != nil {
		s.log.Warn("member's catalog", "member", node, "err", err)
	}
	if applied {
		s.log.Debug("member's catalog received", "member", node, "services", len(services))
	}
}

// OutOfBand reports the carrying of catalogs too large for the tag (the metrics read it).
func (s *Server) OutOfBand() catalogdist.Stats { return s.oob.Stats() }

// Catalog is the running catalog (policy, reload and the netstack's resolver read it).
func (s *Server) Catalog() *catalog.Catalog { return s.cat }

// Close stops the Consul API and DNS, reverts the host resolver and closes the catalog.
func (s *Server) Close() {
	s.stopConsul()
	s.revertResolver()
	takeShutdown(&s.mu, &s.dns)
	_ = s.cat.Close()
	s.oob.Close()
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
	case membership.EventUser:
		s.oob.UserEvent(ev.Name, ev.Payload)
		return
	case membership.EventLeave, membership.EventFailed, membership.EventReap:
		if m.Name != s.cfg.Name {
			s.removeNode(m.Name)
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
		s.removeNode(m.Name)
		return
	}
	if !s.d.Trusted(m.Name) {
		// Its claims are refused, or were never judged (another mode or VNI, no
		// certificate): its services are not answered either.
		s.removeNode(m.Name)
		return
	}
	addr := m.Info.Subnet.Masked().Addr().Next()
	tag := m.Tags[catalog.CatalogTagKey]
	if catalogdist.IsTag(tag) {
		// Its services until now stay answered until the announced catalog arrives.
		if s.cat.Announce(m.Name, addr, tag) {
			s.oob.Want(m.Name, tag)
		}
		return
	}
	s.oob.Forget(m.Name)
	if err := s.cat.UpdateNode(m.Name, addr, tag); err != nil {
		s.log.Warn("member's catalog tag", "member", m.Name, "err", err)
	}
}

func (s *Server) removeNode(name string) {
	s.cat.RemoveNode(name)
	s.oob.Forget(name)
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
