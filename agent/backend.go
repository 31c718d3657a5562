package agent

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
)

// The control API's view of the agent (apiBackend).

// Status reports the agent's identity, addresses and counters.
func (a *Agent) Status() api.Status {
	a.mu.Lock()
	address, subnet := a.address, a.subnet // moved by gossip at run time (onSubnetChanged)
	a.mu.Unlock()
	st := api.Status{
		Name:       a.cfg.Name,
		Version:    Version,
		Protocol:   ProtocolVersion,
		Mode:       a.cfg.Mode,
		Encryption: a.cfg.Encryption,
		PublicKey:  a.publicKey().String(),
		Interface:  a.cfg.Interface,
		Address:    address.String(),
		MTU:        a.cfg.MTU,
		MTUSource:  a.cfg.MTUSource(),
		VNI:        a.cfg.VNI,
		ListenPort: int(a.port),
		Gossip:     "disabled",
		Started:    a.started,
	}
	if a.cfg.Netstack {
		st.Interface = "netstack" // no device: the userspace stack
	}
	if subnet.IsValid() {
		st.Subnet = subnet.String()
	}
	if a.table != nil {
		st.Peers = len(a.table.Peers())
	}
	if a.dpUp.Load() {
		st.Drops, st.Counters = a.dp.Stats()
		if m := a.tapMode.Load(); m != nil {
			st.TAP = &api.TAPStatus{Offload: m.Offload, Reason: m.Reason}
		}
		if m := a.tunMode.Load(); m != nil {
			st.TUN = *m
		}
	}
	if a.cat != nil {
		if n := a.cat.cat.ForeignAddressDrops(); n > 0 {
			if st.Counters == nil {
				st.Counters = map[string]uint64{}
			}
			st.Counters["catalog_foreign_service_address"] = n
		}
	}
	if a.gsp != nil {
		st.Gossip = a.gsp.Addr()
		for _, m := range a.gsp.APIMembers() {
			if m.Status == "alive" {
				st.Members++
			}
		}
		if sn := a.gsp.Subnet(); sn.IsValid() {
			st.Subnet = sn.String()
		}
	}
	st.RetryJoin = a.rj.String()
	a.mu.Lock()
	st.Problems = append(st.Problems, a.problems...)
	a.mu.Unlock()
	a.trustStatus(&st)
	a.consoleStatus(&st) // wire_console.go
	return st
}

// Members lists the gossip members (empty without gossip).
func (a *Agent) Members() []api.Member {
	if a.gsp == nil {
		return []api.Member{}
	}
	return a.gsp.APIMembers()
}

// Peers lists the datapath peers with their counters.
func (a *Agent) Peers() []api.Peer {
	out := []api.Peer{}
	if a.table == nil {
		return out
	}
	for _, p := range a.table.Peers() {
		s := p.Stats()
		ap := api.Peer{
			PublicKey:     s.PublicKey.String(),
			LastHandshake: s.LastHandshake,
			RxBytes:       s.RxBytes,
			TxBytes:       s.TxBytes,
			RxPackets:     s.RxPackets,
			TxPackets:     s.TxPackets,
			Handshakes:    s.Handshakes,
			Drops:         s.Drops,
			AllowedIPs:    []string{},
		}
		if s.Endpoint.IsValid() {
			ap.Endpoint = s.Endpoint.String()
		}
		sv := p.Session().View()
		ap.State, ap.StateReason = peerState(time.Now(), s.Endpoint.IsValid(), s.LastHandshake, sv)
		ap.HandshakeFailures = sv.GaveUp
		ap.NoReplyHandshakes = s.NoReplyHandshakes
		ap.PathMTU = s.PathMTU
		for _, pfx := range s.AllowedIPs {
			ap.AllowedIPs = append(ap.AllowedIPs, pfx.String())
		}
		if a.gsp != nil {
			ap.Name = a.gsp.NameOf(s.PublicKey)
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].PublicKey < out[j].Name+out[j].PublicKey })
	return out
}

// Join joins the gossip cluster through addrs.
func (a *Agent) Join(ctx context.Context, addrs []string) (int, error) {
	if a.gsp == nil {
		return 0, errors.New("gossip is disabled on this agent (no-gossip / gossip.disabled): static peers only")
	}
	return a.gsp.Join(addrs)
}

// Leave announces a graceful leave, withdraws the routes of every peer and stops the agent.
func (a *Agent) Leave(ctx context.Context) error {
	var err error
	a.leaveOnce.Do(func() {
		if a.gsp != nil {
			err = a.gsp.Leave()
		}
		if a.table != nil {
			for _, p := range a.table.Peers() {
				a.table.Remove(p.Key())
			}
		}
		close(a.leaving)
	})
	return err
}

func (a *Agent) routes(mux *http.ServeMux) {
	a.serviceRoutes(mux)
	a.reloadRoutes(mux)
	a.policyRoutes(mux)
	a.cniRoutes(mux)
	a.keyringRoutes(mux)
	a.clientRoutes(mux)
	a.tokenRoutes(mux)
	mux.HandleFunc("GET /v1/fdb", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, a.FDB()) })
}
