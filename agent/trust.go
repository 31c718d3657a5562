package agent

// Trust: no member can speak for another. Every claim a member makes in its tags is checked
// here before the datapath acts on it (gossip.apply calls checkClaim for every member update,
// never per packet):
//
//	member tags ──▶ checkClaim (pure: policy × member) ──ok──▶ duplicate-key check ──▶ peer
//	                      │ refused                                │ refused
//	                      └──────────────▶ noteVerdict: log once per change, count by reason,
//	                                       shown in `weft members`; not peered, no services
//
// Without a CA: a subnet is one /24 of the cluster CIDR (or a static prefix that
// gossip.allowed_static lists) and overlaps neither this host's subnet nor a static peer's
// prefixes; the MAC is the one derived from the public key; the key is neither this host's
// nor a static peer's, and no other live member announces it. With a CA (pki.ca), the member
// must also carry a certificate (tag identity.TagKey) that verifies, is not blocklisted, and
// names its node name, public key and subnet.
//
// A refusal only ever withholds the refused member's claims: nothing that an honest member
// holds is withdrawn for it, because a refused member never reaches the peer table.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/l2"
)

// Reasons a claim is refused without a CA; with one, identity.Reason's labels add to them.
const (
	reasonSubnetNotSlot   = "subnet_not_cluster_slot" // not one /24 of the cluster CIDR
	reasonStaticNotAllow  = "static_not_allowed"      // a static prefix gossip.allowed_static does not list
	reasonOverlapsOwn     = "subnet_overlaps_own"     // overlaps this host's subnet
	reasonOverlapsStatic  = "subnet_overlaps_static"  // overlaps a static peer's allowed IPs
	reasonMACNotDerived   = "mac_not_derived"         // the L2 MAC is not derived from the key
	reasonOwnKey          = "own_key"                 // this host's own public key
	reasonStaticPeerKey   = "static_peer_key"         // the key of a static peer of the config
	reasonDuplicateKey    = "duplicate_key"           // another live member announces the key
	reasonNoCertificate   = "no_certificate"          // a CA is configured and the member has none
	certExpiryWarning     = 7 * 24 * time.Hour        // warn this long before a certificate expires
	trustRecheckInterval  = 30 * time.Second          // re-verify members (expiry) this often with a CA
	maxRefusalDetailBytes = 300                       // a refusal's detail as shown; tags are hostile
)

// refusalReasons is every label of weft_gossip_claims_refused_total: a closed set, so that a
// hostile member cannot create time series.
func refusalReasons() []string {
	return append([]string{reasonSubnetNotSlot, reasonStaticNotAllow, reasonOverlapsOwn, reasonOverlapsStatic,
		reasonMACNotDerived, reasonOwnKey, reasonStaticPeerKey, reasonDuplicateKey, reasonNoCertificate},
		identity.Reasons()...)
}

// claimError is a refused claim: a reason label (metric, `weft members`) and a detail.
type claimError struct {
	reason string
	detail string
}

func (e *claimError) Error() string { return e.reason + ": " + e.detail }

func refuse(reason, format string, args ...any) *claimError {
	return &claimError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// claimPolicy is what a host checks claims against: its own config and state at one moment.
// It is a plain value so that tests drive checkClaim without an agent.
type claimPolicy struct {
	cluster       netip.Prefix   // cluster CIDR, cut into /24s
	allowedStatic []netip.Prefix // gossip.allowed_static: static prefixes members may announce
	own           netip.Prefix   // this host's subnet (zero: none)
	ownKey        crypto.PublicKey
	l2            bool // the MAC is checked (l2 modes)
	static        []staticClaim
	pki           *pkiState // nil: no CA
	now           time.Time
}

// staticClaim is a static peer of the local config: it always wins over gossip.
type staticClaim struct {
	key      crypto.PublicKey
	hasKey   bool // plain VTEP peers have none
	prefixes []netip.Prefix
}

// memberClaim is what one member announces.
type memberClaim struct {
	name string
	info membership.NodeInfo
	cert string // the identity.TagKey tag, "" when absent
}

// checkClaim checks one member's announcement against p and returns what its certificate
// lets it claim (zero without a CA), or a *claimError. The duplicate-key rule needs the other
// members and is applied by the caller.
func checkClaim(p *claimPolicy, m memberClaim) (identity.Claims, *claimError) {
	key := crypto.PublicKey(m.info.PublicKey)
	var claims identity.Claims
	if p.pki != nil {
		if m.cert == "" {
			return claims, refuse(reasonNoCertificate, "a CA is configured and the member carries no certificate")
		}
		cert, err := identity.DecodeTag(m.cert)
		if err == nil {
			claims, err = identity.Verify(cert, p.pki.pool, p.now, p.pki.blocklist)
		}
		if err == nil {
			err = claims.Check(m.name, key, m.info.Subnet)
		}
		if err != nil {
			return identity.Claims{}, refuse(identity.Reason(err), "%v", err)
		}
	}
	if key == p.ownKey {
		return claims, refuse(reasonOwnKey, "announces this host's own public key (a copy of its state directory?)")
	}
	for _, s := range p.static {
		if s.hasKey && s.key == key {
			return claims, refuse(reasonStaticPeerKey, "announces the public key of a static peer of the config, which always wins")
		}
	}
	sn := m.info.Subnet
	if err := p.checkSubnet(sn, m.info.Static); err != nil {
		return claims, err
	}
	if p.l2 && m.info.MAC != ([6]byte{}) {
		if want := tapMACOf(key); l2.MAC(m.info.MAC) != want {
			return claims, refuse(reasonMACNotDerived, "announces MAC %s, its key's is %s", l2.MAC(m.info.MAC), want)
		}
	}
	return claims, nil
}

// checkSubnet: one /24 of the cluster CIDR, or (static) within gossip.allowed_static; and no
// overlap with this host's subnet or a static peer's prefixes.
func (p *claimPolicy) checkSubnet(sn netip.Prefix, static bool) *claimError {
	slot := sn.Addr().Is4() && sn.Bits() == 24 && p.cluster.Bits() <= 24 && p.cluster.Contains(sn.Addr())
	if !slot {
		if !static {
			return refuse(reasonSubnetNotSlot, "announces %s, not one /24 of the cluster CIDR %s", sn, p.cluster)
		}
		if !slices.ContainsFunc(p.allowedStatic, func(a netip.Prefix) bool { return prefixWithin(sn, a) }) {
			return refuse(reasonStaticNotAllow, "announces static %s, neither a /24 of the cluster CIDR %s nor within gossip.allowed_static %v", sn, p.cluster, p.allowedStatic)
		}
	}
	if p.own.IsValid() && sn.Overlaps(p.own) {
		return refuse(reasonOverlapsOwn, "announces %s, which overlaps this host's subnet %s", sn, p.own)
	}
	for _, s := range p.static {
		for _, sp := range s.prefixes {
			// A static prefix that holds the whole cluster CIDR (a default route, an exit
			// host) is less specific than every member subnet: longest-prefix match keeps
			// both, so it is no conflict.
			if prefixWithin(p.cluster, sp) {
				continue
			}
			if sn.Overlaps(sp) {
				return refuse(reasonOverlapsStatic, "announces %s, which overlaps static peer prefix %s", sn, sp)
			}
		}
	}
	return nil
}

// prefixWithin reports whether inner lies within outer (same family, at least as long).
func prefixWithin(inner, outer netip.Prefix) bool {
	return inner.IsValid() && outer.IsValid() && inner.Addr().Is4() == outer.Addr().Is4() &&
		inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// tapMACOf derives the TAP MAC of the host with public key k: stable across restarts without
// state, locally administered (0x02) and unicast. Members' announced MACs must be this.
func tapMACOf(k crypto.PublicKey) l2.MAC {
	sum := sha256.Sum256(append([]byte("weft tap mac "), k.String()...))
	var m l2.MAC
	copy(m[:], sum[:6])
	m[0] = m[0]&0xfc | 0x02
	return m
}

// pkiState is the loaded CA configuration: immutable, swapped whole on reload.
type pkiState struct {
	pool      *identity.CAPool
	blocklist *identity.Blocklist // nil: none
	own       *identity.Certificate
	ownClaims identity.Claims
	ownErr    error // expired or not yet valid: the agent runs, the others refuse it
	tag       string
}

// loadPKI reads pki.ca, pki.cert and pki.blocklist and checks the certificate against this
// host: signed by a configured CA, not blocklisted, issued to its name and public key. It
// returns nil, nil without pki.ca. An expired or not yet valid certificate is kept (ownErr):
// the agent still serves its static peers, and `weft status` says to renew.
func loadPKI(cfg config.PKIConfig, name string, key crypto.PublicKey, now time.Time) (*pkiState, error) {
	if cfg.CA == "" {
		if cfg.Cert != "" || cfg.Blocklist != "" {
			return nil, errors.New("pki.cert / pki.blocklist without pki.ca: set pki.ca to the CA certificate (weft ca init writes ca.crt)")
		}
		return nil, nil
	}
	if cfg.Cert == "" {
		return nil, errors.New("pki.ca is set but pki.cert is not: sign this host's certificate with `weft ca sign --name NAME --public-key KEY` and set pki.cert")
	}
	pool, err := identity.LoadCAPoolFile(cfg.CA)
	if err != nil {
		return nil, fmt.Errorf("pki.ca: %w", err)
	}
	st := &pkiState{pool: pool}
	if cfg.Blocklist != "" {
		if st.blocklist, err = identity.LoadBlocklistFile(cfg.Blocklist); err != nil {
			return nil, fmt.Errorf("pki.blocklist: %w", err)
		}
	}
	if st.own, err = identity.LoadCertificateFile(cfg.Cert); err != nil {
		return nil, fmt.Errorf("pki.cert: %w", err)
	}
	st.ownClaims, err = identity.Verify(st.own, pool, now, st.blocklist)
	switch {
	case errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrNotYetValid):
		st.ownErr = err
		st.ownClaims = claimsOf(st.own)
	case err != nil:
		return nil, fmt.Errorf("pki.cert %s: %w: sign this host's key with the CA of pki.ca (`weft ca sign --name %s --public-key %s`)", cfg.Cert, err, name, key)
	}
	if !st.ownClaims.MatchesKey(key) {
		return nil, fmt.Errorf("pki.cert %s is for public key %s, this host's is %s: sign this host's key (`weft ca sign --name %s --public-key %s`)", cfg.Cert, st.ownClaims.PublicKey, key, name, key)
	}
	if !st.ownClaims.MatchesName(name) {
		return nil, fmt.Errorf("pki.cert %s is for node name %q, this host's is %q: set name, or sign a certificate for %q", cfg.Cert, st.ownClaims.Name, name, name)
	}
	if st.tag, err = st.own.EncodeTag(); err != nil {
		return nil, fmt.Errorf("pki.cert: %w", err)
	}
	return st, nil
}

// claimsOf is what an (expired) certificate would claim, for display and the subnet choice.
func claimsOf(c *identity.Certificate) identity.Claims {
	return identity.Claims{Name: c.Name, PublicKey: crypto.PublicKey(c.PublicKey), Prefixes: c.Prefixes,
		Groups: c.Groups, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// pinnedSubnet is the subnet a certificate pins: its first /24 of the cluster CIDR.
func (st *pkiState) pinnedSubnet(cluster netip.Prefix) netip.Prefix {
	for _, p := range st.ownClaims.Prefixes {
		if p.Addr().Is4() && p.Bits() == 24 && prefixWithin(p, cluster) {
			return p
		}
	}
	return netip.Prefix{}
}

// warnings lists what an operator should act on about the certificates, now.
func (st *pkiState) warnings(now time.Time) []string {
	var out []string
	switch {
	case st.ownErr != nil:
		out = append(out, fmt.Sprintf("this host's certificate is not valid (%v): the other hosts refuse it; renew it with `weft ca sign` and `weft reload`", st.ownErr))
	case now.After(st.ownClaims.NotAfter):
		out = append(out, fmt.Sprintf("this host's certificate expired at %s: the other hosts refuse it; renew it with `weft ca sign` and `weft reload`",
			st.ownClaims.NotAfter.Format(time.RFC3339)))
	case st.ownClaims.ExpiresWithin(now, certExpiryWarning):
		out = append(out, fmt.Sprintf("this host's certificate expires in %s (%s): renew it with `weft ca sign`, then `weft reload`",
			st.ownClaims.TimeLeft(now).Round(time.Minute), st.ownClaims.NotAfter.Format(time.RFC3339)))
	}
	for _, ca := range st.pool.ExpiringWithin(now, certExpiryWarning) {
		out = append(out, fmt.Sprintf("CA %q expires %s: rotate it (add the new CA to pki.ca, re-sign the hosts)", ca.Name, ca.NotAfter.Format(time.RFC3339)))
	}
	return out
}

// claimPolicy builds the policy of this host at now.
func (a *Agent) claimPolicy(now time.Time) *claimPolicy {
	p := &claimPolicy{cluster: a.cfg.ClusterCIDR.Prefix, ownKey: a.priv.Public(), l2: a.cfg.Mode == "l2", pki: a.pki.Load(), now: now}
	for _, s := range a.cfg.Gossip.AllowedStatic {
		if sp, err := netip.ParsePrefix(s); err == nil { // Validate refused the others
			p.allowedStatic = append(p.allowedStatic, sp.Masked())
		}
	}
	a.mu.Lock()
	p.own = a.subnet // this host's, as its device has it (also a withdrawn static one)
	a.mu.Unlock()
	for _, pc := range a.cfg.Peers {
		sc := staticClaim{}
		if k, err := crypto.ParsePublicKey(pc.PublicKey); err == nil {
			sc.key, sc.hasKey = k, true
		}
		for _, ip := range pc.AllowedIPs {
			sc.prefixes = append(sc.prefixes, ip.Prefix)
		}
		p.static = append(p.static, sc)
	}
	return p
}

// verdict is the outcome of the checks for one member.
type verdict struct {
	claims identity.Claims
	err    *claimError
}

// refusal is a member's current refusal as shown and logged.
type refusal struct {
	reason, detail string
}

// noteVerdict records a member's verdict; a refusal is logged and counted once per change of
// reason or detail, and its end is logged too.
func (g *gossip) noteVerdict(name string, v verdict) {
	g.mu.Lock()
	old, had := g.refused[name]
	if v.err == nil {
		delete(g.refused, name)
		if v.claims.Name != "" {
			g.claims[name] = v.claims
		} else {
			delete(g.claims, name)
		}
		g.mu.Unlock()
		if had {
			g.a.log.Info("member's claims are accepted again", "member", name, "was", old.reason)
		}
		return
	}
	delete(g.claims, name)
	detail := v.err.detail
	if len(detail) > maxRefusalDetailBytes {
		detail = detail[:maxRefusalDetailBytes] + "…"
	}
	r := refusal{reason: v.err.reason, detail: detail}
	changed := !had || old != r
	if changed {
		g.refused[name] = r
		g.refusedCount[r.reason]++
	}
	g.mu.Unlock()
	if changed {
		g.a.log.Warn("member's claims refused; not peering", "member", name, "reason", r.reason, "detail", r.detail)
	}
}

// forget drops a member's verdict (gone, or not a candidate: no subnet, another mode).
func (g *gossip) forget(name string) {
	g.mu.Lock()
	delete(g.refused, name)
	delete(g.claims, name)
	delete(g.cands, name)
	delete(g.candMembers, name)
	g.mu.Unlock()
}

// refusedReason is a member's current refusal, "" when none.
func (g *gossip) refusedReason(name string) (refusal, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.refused[name]
	return r, ok
}

// candidate records that m's claims pass every check but the duplicate one (ok) or not,
// and returns the other candidates that announce key, before and after, so that the caller
// re-applies them: their duplicate status may have changed.
func (g *gossip) candidate(m membership.Member, ok bool) (others []string, dup bool) {
	name, key := m.Name, crypto.PublicKey(m.Info.PublicKey)
	g.mu.Lock()
	defer g.mu.Unlock()
	prev, had := g.cands[name]
	if ok {
		g.cands[name], g.candMembers[name] = key, m
	} else {
		delete(g.cands, name)
		delete(g.candMembers, name)
	}
	for n, k := range g.cands {
		if n == name {
			continue
		}
		if ok && k == key {
			dup = true
			others = append(others, n)
		} else if had && k == prev {
			others = append(others, n)
		}
	}
	return others, dup
}

// duplicates lists the public keys that several live members announce (for `weft status`).
func (g *gossip) duplicates() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	byKey := map[crypto.PublicKey][]string{}
	for n, k := range g.cands {
		byKey[k] = append(byKey[k], n)
	}
	var out []string
	for k, names := range byKey {
		if len(names) > 1 {
			slices.Sort(names)
			out = append(out, fmt.Sprintf("public key %s is announced by members %s: peered with neither", k, strings.Join(names, ", ")))
		}
	}
	slices.Sort(out)
	return out
}

// refusedCounts returns weft_gossip_claims_refused_total by reason, every label present.
func (g *gossip) refusedCounts() map[string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range refusalReasons() {
		out[r] = g.refusedCount[r]
	}
	return out
}

// peerGroups returns the groups of the verified certificate of the member with public key
// key, for policy: nil without a CA, for an unknown key, or for a member that is refused.
// Safe for concurrent use.
func (a *Agent) peerGroups(key crypto.PublicKey) []string {
	if a.gsp == nil || a.pki.Load() == nil {
		return nil
	}
	g := a.gsp
	g.mu.Lock()
	defer g.mu.Unlock()
	name, ok := g.names[key]
	if !ok {
		return nil
	}
	c, ok := g.claims[name]
	if !ok || len(c.Groups) == 0 {
		return nil
	}
	return slices.Clone(c.Groups)
}

// reloadPKI re-reads pki.ca, pki.cert and pki.blocklist (SIGHUP, `weft reload`), announces a
// renewed certificate and has the gossip event loop re-validate every member right away: a
// newly blocklisted member is withdrawn, a newly valid one peered. On error nothing changes.
func (a *Agent) reloadPKI() error {
	if a.cfg.PKI.CA == "" {
		return nil
	}
	st, err := loadPKI(a.cfg.PKI, a.cfg.Name, a.priv.Public(), time.Now())
	if err != nil {
		a.log.Error("pki reload failed; keeping the previous certificates", "err", err)
		return err
	}
	old := a.pki.Swap(st)
	if a.gsp != nil {
		if old == nil || old.tag != st.tag {
			if err := a.gsp.c.SetTag(identity.TagKey, st.tag); err != nil {
				a.pki.Store(old)
				return fmt.Errorf("announce the renewed certificate: %w", err)
			}
		}
		// Members are applied by the event loop alone (one writer of the peer table).
		select {
		case a.gsp.revalidate <- struct{}{}:
		default: // a re-validation is pending already
		}
	}
	a.log.Info("pki reloaded", "certificate", st.ownClaims.Fingerprint, "not_after", st.ownClaims.NotAfter,
		"cas", st.pool.Len(), "blocklisted", st.blocklist.Len())
	for _, w := range st.warnings(time.Now()) {
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
		c := &api.CertificateStatus{Name: p.ownClaims.Name, Groups: p.ownClaims.Groups, Prefixes: []string{},
			NotAfter: p.ownClaims.NotAfter, CAs: p.pool.Len(), Blocklisted: p.blocklist.Len()}
		if fp, err := p.own.Fingerprint(); err == nil {
			c.Fingerprint = fp.String()
		}
		for _, pf := range p.ownClaims.Prefixes {
			c.Prefixes = append(c.Prefixes, pf.String())
		}
		c.Warnings = p.warnings(now)
		st.Certificate = c
		st.Problems = append(st.Problems, c.Warnings...)
	}
	if a.gsp != nil {
		st.Conflicts = a.gsp.duplicates()
		st.Problems = append(st.Problems, st.Conflicts...)
	}
}

// trustMember fills the trust part of one `weft members` row.
func (g *gossip) trustMember(am *api.Member) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.refused[am.Name]; ok {
		am.Refused, am.RefusedDetail = r.reason, r.detail
	}
	if c, ok := g.claims[am.Name]; ok {
		am.Groups = slices.Clone(c.Groups)
		am.CertNotAfter = c.NotAfter
	}
}

// announceCertificate sets this host's certificate tag before gossip joins anyone.
func (g *gossip) announceCertificate() error {
	st := g.a.pki.Load()
	if st == nil {
		return nil
	}
	if err := g.c.SetTag(identity.TagKey, st.tag); err != nil {
		return fmt.Errorf("announce the certificate (tag %q, %d bytes): %w", identity.TagKey, len(st.tag), err)
	}
	return nil
}

// isRefused reports whether the member's claims are refused now.
func (g *gossip) isRefused(name string) bool {
	_, ok := g.refusedReason(name)
	return ok
}

// reloadRoutes adds POST /v1/reload (`weft reload`).
func (a *Agent) reloadRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		changed, restart, err := a.Reload()
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, api.ReloadResult{Changed: changed, RestartNeeded: restart})
	})
}

// trustCollector exports weft_gossip_claims_refused_total{reason}, read at scrape time.
type trustCollector struct {
	a       *Agent
	refused *prometheus.Desc
}

func newTrustCollector(a *Agent) *trustCollector {
	return &trustCollector{a: a, refused: prometheus.NewDesc("weft_gossip_claims_refused_total",
		"Gossip claims refused by this host (counted once per change of a member's claims), by reason.", []string{"reason"}, nil)}
}

func (c *trustCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.refused }

func (c *trustCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.gsp == nil {
		return
	}
	for reason, n := range c.a.gsp.refusedCounts() {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
}

// allocationFilter is membership.Config.AcceptClaim with a CA: a member's subnet claim counts
// for this host's subnet allocation only when its certificate verifies and covers it, so a
// member without one cannot make this host move (a static claim of its /24) or withdraw.
// The verdicts are cached per certificate, name and subnet (the allocator asks every
// ReconcileInterval) and forgotten with each pki reload and every trustRecheckInterval.
type allocationFilter struct {
	a *Agent

	mu    sync.Mutex
	pki   *pkiState
	since time.Time
	seen  map[string]bool
}

func (f *allocationFilter) accept(m membership.Member) bool {
	st := f.a.pki.Load()
	if st == nil {
		return true
	}
	now := time.Now()
	id := m.Name + "\x00" + m.Info.Subnet.String() + "\x00" + m.Tags[identity.TagKey]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pki != st || now.Sub(f.since) > trustRecheckInterval || len(f.seen) > 4096 {
		f.pki, f.since, f.seen = st, now, map[string]bool{}
	}
	if ok, cached := f.seen[id]; cached {
		return ok
	}
	cert, err := identity.DecodeTag(m.Tags[identity.TagKey])
	var claims identity.Claims
	if err == nil {
		claims, err = identity.Verify(cert, st.pool, now, st.blocklist)
	}
	if err == nil {
		err = claims.Check(m.Name, crypto.PublicKey(m.Info.PublicKey), m.Info.Subnet)
	}
	f.seen[id] = err == nil
	return err == nil
}

// warnExpiry logs the certificate warnings when they change state (entering the warning
// window, expiring, a CA nearing its end), not at every check. Event loop only.
func (g *gossip) warnExpiry(now time.Time) {
	st := g.a.pki.Load()
	if st == nil {
		return
	}
	ws := st.warnings(now)
	state := fmt.Sprint(len(ws), st.ownErr != nil, now.After(st.ownClaims.NotAfter), len(st.pool.ExpiringWithin(now, certExpiryWarning)))
	if state == g.expiryState {
		return
	}
	g.expiryState = state
	for _, w := range ws {
		g.a.log.Warn(w)
	}
}
