package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
)

// catalogGlue runs the service catalog, its DNS server and their API routes. Remote services
// arrive in members' catalog tags; a member's overlay address is the first address of its
// subnet (the agent's default address), which is what DNS answers.
type catalogGlue struct {
	a   *Agent
	cat *catalog.Catalog

	mu       sync.Mutex
	dns      *catalog.DNSServer    // replaced when the overlay address moves
	consul   *catalog.ConsulServer // nil unless consul_api.listen is set
	resolved func()                // reverts the host resolver's configuration (resolved_linux.go)
	resolver hostResolver          // zero: the system's (a seam for tests)
}

func startCatalog(a *Agent) (*catalogGlue, error) { return startCatalogWith(a, &catalogGlue{a: a}) }

// startCatalogWith starts the catalog into g (whose seams a test may have set).
func startCatalogWith(a *Agent, g *catalogGlue) (*catalogGlue, error) {
	publish := func(v string) error {
		if a.gsp == nil {
			return nil
		}
		if err := a.gsp.c.SetTag(catalog.CatalogTagKey, v); err != nil {
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
	if a.gsp != nil {
		budget = min(budget, membership.TagBudget-a.gsp.c.TagBytes()-6)
	}
	cat, err := catalog.NewCatalog(catalog.CatalogConfig{
		Node:      a.cfg.Name,
		Addr:      a.address,
		Publish:   publish,
		StatePath: filepath.Join(a.cfg.StateDir, "services.json"),
		Logger:    a.log,
		Budget:    budget,
	})
	if err != nil {
		return nil, fmt.Errorf("service catalog: %w", err)
	}
	g.cat = cat
	for _, s := range a.cfg.Services {
		if err := cat.Register(s); err != nil {
			cat.Close()
			return nil, fmt.Errorf("services: %s: %w", s.Name, err)
		}
	}
	if !a.cfg.DNS.Disabled && len(a.cfg.DNS.Listen) > 0 {
		// A DNS port already taken (another resolver on :53) must not keep the overlay
		// down: serve without DNS and say so in the log and in `weft status`.
		if err := g.startDNS(a.address); err != nil {
			a.log.Error("dns is not serving; the overlay stays up", "err", err)
			a.problem("dns is not serving: " + err.Error())
		} else {
			g.setupResolver(a.address)
		}
	}
	if err := g.startConsul(a.address); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// startDNS serves the catalog on the configured listen addresses, "overlay:PORT" being the
// overlay address addr.
func (g *catalogGlue) startDNS(addr netip.Addr) error {
	a := g.a
	dc := catalog.DefaultDNSConfig()
	dc.Listen = nil
	for _, l := range a.cfg.DNS.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			if a.cfg.Netstack {
				continue // served inside the netstack (netstack.go)
			}
			l = netip.AddrPortFrom(addr, mustPort(port)).String()
		}
		dc.Listen = append(dc.Listen, l)
	}
	if len(dc.Listen) == 0 {
		return nil
	}
	dc.Domain = a.cfg.DNS.Domain
	if a.cfg.DNS.TTL.Duration > 0 {
		dc.TTL = a.cfg.DNS.TTL.Duration
	}
	dc.Upstream = a.cfg.DNS.Upstream
	// Forwarding is for this host (loopback, and its overlay address) and the overlay.
	dc.ForwardFrom = []netip.Prefix{a.cfg.ClusterCIDR.Prefix}
	if sn := a.cfg.Subnet.Prefix; sn.IsValid() && !a.cfg.ClusterCIDR.Contains(sn.Addr()) {
		dc.ForwardFrom = append(dc.ForwardFrom, sn)
	}
	if addr.IsValid() {
		dc.ForwardFrom = append(dc.ForwardFrom, netip.PrefixFrom(addr, addr.BitLen()))
	}
	dc.Logger = a.log
	dc.ConsulAlias = a.cfg.DNS.ConsulAlias
	dc.Clients = a.clientAddr
	if a.cfg.ClusterCIDR.IsValid() {
		dc.Reverse = []netip.Prefix{a.cfg.ClusterCIDR.Prefix}
	}
	srv, err := catalog.NewDNSServer(dc, g.cat)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("dns listen %v: %w (set dns.listen, or dns.disabled: true)", dc.Listen, err)
	}
	g.mu.Lock()
	g.dns = srv
	g.mu.Unlock()
	a.log.Info("dns", "listen", srv.Addrs(), "domain", dc.Domain)
	return nil
}

// dnsStats returns the DNS server's forwarding counters (false while none serves).
func (g *catalogGlue) dnsStats() (catalog.DNSStats, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dns == nil {
		return catalog.DNSStats{}, false
	}
	return g.dns.Stats(), true
}

// rebindDNS restarts the DNS server after the overlay address moved (its old address is gone).
func (g *catalogGlue) rebindDNS(addr netip.Addr) {
	defer g.rebindConsul(addr)
	if !takeShutdown(&g.mu, &g.dns) {
		return
	}
	if err := g.startDNS(addr); err != nil {
		g.a.log.Error("dns after the overlay address moved", "err", err)
		g.a.problem("dns is not serving: " + err.Error())
		return
	}
	g.setupResolver(addr)
}

func mustPort(s string) uint16 {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 53
	}
	return uint16(p)
}

func (g *catalogGlue) close() {
	g.stopConsul()
	g.revertResolver()
	takeShutdown(&g.mu, &g.dns)
	_ = g.cat.Close()
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

// memberEvent keeps the remote part of the catalog in step with membership.
func (g *catalogGlue) memberEvent(ev membership.Event) {
	m := ev.Member
	switch ev.Type {
	case membership.EventJoin, membership.EventUpdate:
	case membership.EventLeave, membership.EventFailed, membership.EventReap:
		if m.Name != g.a.cfg.Name {
			g.cat.RemoveNode(m.Name)
		}
		return
	default:
		return
	}
	g.syncMember(m)
}

func (g *catalogGlue) syncMember(m membership.Member) {
	if m.Name == g.a.cfg.Name {
		return
	}
	if m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
		g.cat.RemoveNode(m.Name)
		return
	}
	if g.a.gsp != nil && g.a.gsp.isRefused(m.Name) {
		// Its claims are refused (trust.go): its services are not answered either.
		g.cat.RemoveNode(m.Name)
		return
	}
	addr := m.Info.Subnet.Masked().Addr().Next()
	if err := g.cat.UpdateNode(m.Name, addr, m.Tags[catalog.CatalogTagKey]); err != nil {
		g.a.log.Warn("member's catalog tag", "member", m.Name, "err", err)
	}
}

func (a *Agent) serviceRoutes(mux *http.ServeMux) {
	catalogOf := func(w http.ResponseWriter) *catalog.Catalog {
		if a.cat == nil {
			writeError(w, http.StatusServiceUnavailable, errors.New("the service catalog is not running"))
			return nil
		}
		return a.cat.cat
	}
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if s := r.URL.Query().Get("index"); s != "" {
			idx, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("index %q: not a number", s))
				return
			}
			wait := 5 * time.Minute
			if ws := r.URL.Query().Get("wait"); ws != "" {
				if wait, err = time.ParseDuration(ws); err != nil || wait <= 0 {
					writeError(w, http.StatusBadRequest, fmt.Errorf("wait %q: not a positive duration like 30s", ws))
					return
				}
			}
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			_, _ = c.Wait(ctx, idx) // a timeout returns the unchanged state, as Consul does
			cancel()
		}
		idx := c.Index()
		w.Header().Set("X-Weft-Index", strconv.FormatUint(idx, 10))
		inst := c.All()
		if inst == nil {
			inst = []catalog.Instance{}
		}
		writeJSON(w, http.StatusOK, api.ServicesResponse{Index: idx, Instances: inst})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		all := r.URL.Query().Get("all") != ""
		inst := c.Instances(strings.ToLower(r.PathValue("name")), !all)
		if inst == nil {
			inst = []catalog.Instance{}
		}
		writeJSON(w, http.StatusOK, inst)
	})
	mux.HandleFunc("GET /v1/local-services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		writeJSON(w, http.StatusOK, c.Local())
	})
	mux.HandleFunc("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		var s catalog.Service
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad service: %w", err))
			return
		}
		if err := c.Register(s); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, catalog.ErrCatalogFull) {
				code = http.StatusInsufficientStorage
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("DELETE /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if err := c.Deregister(r.PathValue("name")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, catalog.ErrUnknownService) {
				code = http.StatusNotFound
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("PUT /v1/services/{name}/renew", func(w http.ResponseWriter, r *http.Request) {
		c := catalogOf(w)
		if c == nil {
			return
		}
		if err := c.Renew(r.PathValue("name")); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, catalog.ErrUnknownService) {
				code = http.StatusNotFound
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
}
