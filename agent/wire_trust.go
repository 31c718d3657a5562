package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/l2"
)

// The trust rules (discovery/trust) as the agent wires them: it owns the CA configuration
// in force (a.pki, swapped whole by reloadPKI), builds the claim policy from its own config
// and state, and shows the verdicts the gossip subsystem keeps.

// loadPKI loads the pki section of the configuration (trust.LoadPKI).
func loadPKI(cfg config.PKIConfig, name string, key crypto.PublicKey, now time.Time) (*trust.PKI, error) {
	return trust.LoadPKI(trust.Files{CA: cfg.CA, Cert: cfg.Cert, Blocklist: cfg.Blocklist}, name, key, now)
}

// tapMACOf derives the TAP MAC of the host with public key k (trust.DerivedMAC).
func tapMACOf(k crypto.PublicKey) l2.MAC { return l2.MAC(trust.DerivedMAC(k)) }

// claimPolicy builds the policy of this host at now.
func (a *Agent) claimPolicy(now time.Time) *trust.Policy {
	p := &trust.Policy{Cluster: a.cfg.ClusterCIDR.Prefix, SubnetBits: a.cfg.SubnetLen, OwnKey: a.publicKey(), L2: a.cfg.Mode == "l2", PKI: a.pki.Load(), Now: now}
	for _, s := range a.cfg.Gossip.AllowedStatic {
		if sp, err := netip.ParsePrefix(s); err == nil { // Validate refused the others
			p.AllowedStatic = append(p.AllowedStatic, sp.Masked())
		}
	}
	a.mu.Lock()
	p.Own = a.subnet // this host's, as its device has it (also a withdrawn static one)
	a.mu.Unlock()
	for _, pc := range a.cfg.Peers {
		sc := trust.StaticClaim{}
		if k, err := crypto.ParsePublicKey(pc.PublicKey); err == nil {
			sc.Key, sc.HasKey = k, true
		}
		for _, ip := range pc.AllowedIPs {
			sc.Prefixes = append(sc.Prefixes, ip.Prefix)
		}
		p.Static = append(p.Static, sc)
	}
	return p
}

// peerGroups returns the groups of the verified certificate of the member with public key
// key, for policy: nil without gossip or a CA, for an unknown key, or for a member that is
// refused. Safe for concurrent use.
func (a *Agent) peerGroups(key crypto.PublicKey) []string {
	if a.gsp == nil {
		return nil
	}
	return a.gsp.PeerGroups(key)
}

// reloadPKI re-reads pki.ca, pki.cert and pki.blocklist (SIGHUP, `weft reload`), announces a
// renewed certificate and has the gossip event loop re-validate every member right away: a
// newly blocklisted member is withdrawn, a newly valid one peered. On error nothing changes.
func (a *Agent) reloadPKI() error {
	if a.cfg.PKI.CA == "" {
		return nil
	}
	st, err := loadPKI(a.cfg.PKI, a.cfg.Name, a.publicKey(), time.Now())
	if err != nil {
		a.log.Error("pki reload failed; keeping the previous certificates", "err", err)
		return err
	}
	old := a.pki.Swap(st)
	if a.gsp != nil {
		if old == nil || old.Tag != st.Tag {
			if err := a.gsp.Cluster().SetTag(identity.TagKey, st.Tag); err != nil {
				a.pki.Store(old)
				return fmt.Errorf("announce the renewed certificate: %w", err)
			}
		}
		// Members are applied by the event loop alone (one writer of the peer table).
		a.gsp.Revalidate()
	}
	a.log.Info("pki reloaded", "certificate", st.OwnClaims.Fingerprint, "not_after", st.OwnClaims.NotAfter,
		"cas", st.Pool.Len(), "blocklisted", st.Blocklist.Len())
	for _, w := range st.Warnings(time.Now()) {
		a.log.Warn(w)
	}
	return nil
}

// reloadPKIStep is Reload's pki step: it takes the pki paths of the new configuration and
// re-reads all three files (a renewed certificate, a changed CA bundle or blocklist), so a
// renewal needs no restart. A file that fails to load changes nothing.
func (a *Agent) reloadPKIStep(next *config.Config) (string, error) {
	a.mu.Lock()
	old := a.cfg.PKI
	if old.CA != "" && next.PKI.CA == "" {
		a.mu.Unlock()
		// Not applied live: members would still be checked against the old CA.
		return "", errors.New("pki.ca removed: turning the cluster CA off takes a restart of the agent (systemctl restart weft); until then members are still checked against it")
	}
	a.cfg.PKI = next.PKI
	a.mu.Unlock()
	if err := a.reloadPKI(); err != nil {
		a.mu.Lock()
		a.cfg.PKI = old
		a.mu.Unlock()
		return "", err
	}
	if next.PKI.CA == "" {
		return "", nil
	}
	return "pki: certificate, CAs and blocklist re-read", nil
}

// trustStatus fills the trust part of `weft status`.
func (a *Agent) trustStatus(st *api.Status) {
	now := time.Now()
	if p := a.pki.Load(); p != nil {
		c := &api.CertificateStatus{Name: p.OwnClaims.Name, Groups: p.OwnClaims.Groups, Prefixes: []string{},
			NotAfter: p.OwnClaims.NotAfter, CAs: p.Pool.Len(), Blocklisted: p.Blocklist.Len()}
		if fp, err := p.Own.Fingerprint(); err == nil {
			c.Fingerprint = fp.String()
		}
		for _, pf := range p.OwnClaims.Prefixes {
			c.Prefixes = append(c.Prefixes, pf.String())
		}
		c.Warnings = p.Warnings(now)
		st.Certificate = c
		st.Problems = append(st.Problems, c.Warnings...)
	}
	if a.gsp != nil {
		st.Conflicts = a.gsp.Duplicates()
		st.Problems = append(st.Problems, st.Conflicts...)
	}
}

// reloadRoutes adds POST /v1/reload (`weft reload`).
func (a *Agent) reloadRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		changed, restart, err := a.Reload()
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, api.ReloadResult{Changed: changed, RestartNeeded: restart})
	})
}

// newTrustCollector exports the gossip subsystem's refusal counts for the agent's metrics.
func newTrustCollector(a *Agent) prometheus.Collector {
	return refusedCollector(func() map[string]uint64 {
		if a.gsp == nil {
			return nil
		}
		return a.gsp.RefusedCounts()
	})
}

// refusedCollector exports weft_gossip_claims_refused_total{reason}, read at scrape time
// from counts (nil: no series).
func refusedCollector(counts func() map[string]uint64) prometheus.Collector {
	return &trustCollector{counts: counts, refused: prometheus.NewDesc("weft_gossip_claims_refused_total",
		"Gossip claims refused by this host (counted once per change of a member's claims), by reason.", []string{"reason"}, nil)}
}

type trustCollector struct {
	counts  func() map[string]uint64
	refused *prometheus.Desc
}

func (c *trustCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.refused }

func (c *trustCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
}
