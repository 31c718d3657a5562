package agent

import (
	"net/netip"
	"sort"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/datapath"
	"github.com/weftnet/weft/agent/rootless"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/tunnel"
)

// The datapath (package datapath) and netstack mode's services (package rootless), wired to
// the agent.

// newDatapath chooses the datapath of a's (validated) config; a.priv is loaded.
func newDatapath(a *Agent) datapath.Datapath {
	return datapath.New(datapath.ConfigOf(a.cfg), datapathDeps(a))
}

// datapathDeps is what the datapath reads from the agent: the table, identity, policy and
// address exist from Run on, before the datapath starts.
func datapathDeps(a *Agent) datapath.Deps {
	return datapath.Deps{
		Logger:        a.log,
		PublicKey:     a.publicKey(),
		TAPMAC:        tapMACOf,
		Table:         func() *peers.Table { return a.table },
		Identity:      func() *crypto.Identity { return a.id },
		Policy:        func() tunnel.Policy { return a.pol.Hook() },
		Address:       func() (netip.Addr, int) { return a.address, a.linkBits() },
		ConfigureLink: configureLink,
		AddRoute:      addRoute,
		OpenTAP:       tap.OpenBest,
		TAPOpened:     func(m tap.Mode) { a.tapMode.Store(&m) },
		TUNOpened:     func(mode string) { a.tunMode.Store(&mode) },
	}
}

// proxyEvents are the rootless services' counters by event (nil outside netstack mode).
func proxyEvents(d datapath.Datapath) map[string]uint64 {
	if s, ok := d.(datapath.Stack); ok {
		return s.Proxied().Snapshot()
	}
	return nil
}

// tapMAC derives this host's TAP MAC from its public key: stable across restarts without
// state, locally administered (0x02) and unicast.
func (a *Agent) tapMAC() l2.MAC { return tapMACOf(a.publicKey()) }

// FDB lists the forwarding database (empty in L3 mode).
func (a *Agent) FDB() []api.FDBEntry {
	nameOf := func(crypto.PublicKey) string { return "" }
	if a.gsp != nil {
		nameOf = a.gsp.NameOf
	}
	out := append([]api.FDBEntry{}, a.dp.FDB(nameOf)...)
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out
}

// startNetstackServices starts the proxies, forwards, exposes and the overlay DNS listener
// of netstack mode; it returns what stops them. Outside netstack mode it does nothing.
func (a *Agent) startNetstackServices() (stop func(), err error) {
	s, ok := a.dp.(datapath.Stack)
	if !ok {
		return func() {}, nil
	}
	var cat catalog.DNSSource // nil unless the catalog runs
	if a.cat != nil {
		cat = a.cat.cat
	}
	return rootless.Start(rootless.ConfigOf(a.cfg), rootless.Deps{
		Logger:   a.log,
		Stack:    s.Net(),
		Address:  a.address,
		Counters: s.Proxied(),
		Catalog:  cat,
		HasPeer:  func(ip netip.Addr) bool { return a.table != nil && a.table.Lookup(ip) != nil },
	})
}
