package agent

// The agent's side of the services subsystem (agent/services): what it gets of the agent,
// and the handle the rest of the agent keeps on it.

import (
	"net/http"
	"net/netip"

	"github.com/weftnet/weft/agent/services"
	"github.com/weftnet/weft/discovery/catalog"
)

// catalogGlue is the agent's handle on the services subsystem: the subsystem, and the
// catalog it runs, which gossip, policy, reload, the netstack and the status read.
type catalogGlue struct {
	svc *services.Server
	cat *catalog.Catalog
}

func startCatalog(a *Agent) (*catalogGlue, error) { return startCatalogWith(a, hostResolver{}) }

// startCatalogWith starts the services subsystem, configuring the host's resolver through
// r (zero: the system's; a seam for tests).
func startCatalogWith(a *Agent, r hostResolver) (*catalogGlue, error) {
	svc, err := services.Start(servicesDeps(a, r))
	if err != nil {
		return nil, err
	}
	return &catalogGlue{svc: svc, cat: svc.Catalog()}, nil
}

// servicesDeps is what the services subsystem gets of the agent.
func servicesDeps(a *Agent, r hostResolver) services.Deps {
	d := services.Deps{
		Config:  a.cfg,
		Address: func() netip.Addr { a.mu.Lock(); defer a.mu.Unlock(); return a.address },
		Subnet:  func() netip.Prefix { a.mu.Lock(); defer a.mu.Unlock(); return a.subnet },
		Members: a.Members,
		Clients: a.clientAddr,
		HostResolver: func(addrs []netip.AddrPort, overlay netip.Addr) func() {
			return a.setupResolver(r, addrs, overlay)
		},
		Version: Version,
		Logger:  a.log,
		Problem: a.problem,
		Refused: a.httpRefused.Add,
	}
	if a.gsp != nil {
		d.Tags = a.gsp.Cluster()
		d.Trusted = a.gsp.Trusted
	}
	return d
}

func (g *catalogGlue) close() { g.svc.Close() }

// serviceRoutes adds /v1/services… to the control API.
func (a *Agent) serviceRoutes(mux *http.ServeMux) {
	services.Routes(mux, func() *catalog.Catalog {
		if a.cat == nil {
			return nil
		}
		return a.cat.cat
	})
}
