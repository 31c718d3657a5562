package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/discovery/enroll"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/internal/fsutil"
)

// Enrollment (discovery/enroll) as the agent wires it. A host is one of:
//
//   - a CA host: it holds the CA key (pki.ca_key, or STATE_DIR/ca.key written by `weft
//     init`); it issues its own certificate, serves enrollment on enroll.listen and the
//     token API (`weft token`), and re-issues its own certificate before expiry;
//   - a joiner: started with join_token and no certificate, it enrolls with the CA host (the
//     host of its first join/retry_join address, on the enroll port) before gossip starts,
//     and keeps what it received in STATE_DIR: ca.crt, host.crt, gossip.key, enrolled.json;
//   - an enrolled host: those files exist; it renews its certificate with the CA host it
//     enrolled with after two thirds of the certificate's validity.
//
// stateDefaults points pki and the gossip key at those files when the configuration does not
// name others, at start and at every reload, so that a reload sees the same paths.

// Files of enrollment in the state directory.
const (
	stateCAKey      = "ca.key"
	stateCACert     = "ca.crt"
	stateHostCert   = "host.crt"
	stateGossipKey  = "gossip.key"
	stateEnrollDir  = "enroll"
	stateEnrolledAs = "enrolled.json"
)

// enrolled is STATE_DIR/enrolled.json: where a joiner enrolled and the cluster it joined.
type enrolled struct {
	CAHost      string       `json:"ca_host"`
	ClusterCIDR netip.Prefix `json:"cluster_cidr"`
}

// enrollment is the agent's enrollment state.
type enrollment struct {
	store   *enroll.Store  // CA host
	srv     *enroll.Server // CA host, while serving
	pending bool           // join_token given and not enrolled yet
	caHost  string         // an enrolled joiner's CA host (renewals)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// stateDefaults fills the pki paths, the gossip key file and (an enrolled joiner) the
// cluster CIDR from the state directory where the configuration leaves them empty.
func stateDefaults(cfg *config.Config) *enrolled {
	sp := func(n string) string { return filepath.Join(cfg.StateDir, n) }
	if cfg.PKI.CAKey == "" && cfg.PKI.CA == "" && exists(sp(stateCAKey)) {
		cfg.PKI.CAKey, cfg.PKI.CA = sp(stateCAKey), sp(stateCACert)
	}
	if cfg.PKI.CAKey != "" && cfg.PKI.Cert == "" {
		cfg.PKI.Cert = sp(stateHostCert)
	}
	var en *enrolled
	if b, err := os.ReadFile(sp(stateEnrolledAs)); err == nil && cfg.PKI.CAKey == "" {
		var e enrolled
		if json.Unmarshal(b, &e) == nil && e.ClusterCIDR.IsValid() {
			en = &e
			if cfg.PKI.CA == "" {
				cfg.PKI.CA, cfg.PKI.Cert = sp(stateCACert), sp(stateHostCert)
			}
			cfg.ClusterCIDR = config.Prefix{Prefix: e.ClusterCIDR} // the CA host's, as granted
		}
	}
	if cfg.Gossip.Key == "" && cfg.Gossip.KeyFile == "" && exists(sp(stateGossipKey)) {
		cfg.Gossip.KeyFile = sp(stateGossipKey)
	}
	return en
}

// prepareEnrollment runs in New before the pki is loaded.
func (a *Agent) prepareEnrollment() error {
	a.enr = &enrollment{}
	if en := stateDefaults(&a.cfg); en != nil {
		a.enr.caHost = en.CAHost
	}
	switch {
	case a.cfg.PKI.CAKey != "":
		return a.prepareCAHost()
	case a.cfg.JoinToken != "" && a.cfg.PKI.CA == "":
		a.enr.pending = true
	case a.cfg.PKI.CA != "" || a.cfg.Trust == config.TrustSharedKey || a.cfg.Gossip.Disabled:
		// A CA configured by hand; the opt-out; or no gossip members to trust.
	case len(a.cfg.Gossip.Join) == 0 && len(a.cfg.Gossip.RetryJoin) == 0:
		return a.bootstrapCluster()
	default:
		return errors.New("this host joins a cluster (gossip.join / retry_join) but has no certificate: on the CA host (where `weft init` ran) run `weft token create`, then start this agent with --join-token TOKEN; or set trust: shared-key to run without a CA (labs: every holder of the gossip key is then trusted to claim addresses)")
	}
	return nil
}

// bootstrapCluster makes this host the first CA host of a new cluster (the CA default: an
// agent with no certificate that joins nobody, as `k3s server` does).
func (a *Agent) bootstrapCluster() error {
	res, err := InitCluster(a.cfg.StateDir, "weft")
	if err != nil {
		return err
	}
	a.log.Info("created a new cluster: this host is its CA host; other hosts join with the line `weft token create` prints here",
		"ca_fingerprint", res.Fingerprint.String(), "state_dir", a.cfg.StateDir)
	stateDefaults(&a.cfg)
	return a.prepareCAHost()
}

// prepareCAHost opens the CA host's store and issues this host's certificate when it has
// none valid for its name and key.
func (a *Agent) prepareCAHost() error {
	ca, err := identity.LoadCertificateFile(a.cfg.PKI.CA)
	if err != nil {
		return fmt.Errorf("pki.ca: %w", err)
	}
	if ca.Kind != identity.KindCA {
		return fmt.Errorf("pki.ca %s is a host certificate: a CA host needs the CA certificate (weft init writes STATE_DIR/ca.crt)", a.cfg.PKI.CA)
	}
	key, err := identity.LoadCAKeyFile(a.cfg.PKI.CAKey)
	if err != nil {
		return fmt.Errorf("pki.ca_key: %w", err)
	}
	st, err := enroll.OpenStore(enroll.StoreConfig{
		Dir: filepath.Join(a.cfg.StateDir, stateEnrollDir), CA: ca, CAKey: key,
		Cluster: a.cfg.ClusterCIDR.Prefix, SubnetBits: a.cfg.SubnetLen, Validity: a.cfg.Enroll.CertValidity.Duration,
		GossipKey: func() []byte {
			k, _ := config.GossipKey(a.cfg.Gossip) // checked below; the file may be rewritten
			return k
		},
		Blocklist: func() *identity.Blocklist {
			if p := a.pki.Load(); p != nil {
				return p.Blocklist
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	if k, err := config.GossipKey(a.cfg.Gossip); err != nil || k == nil {
		return fmt.Errorf("a CA host hands the gossip key to the hosts it enrolls, and this one has none (%v): set gossip.key_file (weft init writes STATE_DIR/gossip.key)", err)
	}
	a.enr.store = st
	cur, _ := identity.LoadCertificateFile(a.cfg.PKI.Cert)
	if cur != nil && cur.Name == a.cfg.Name && cur.PublicKey == a.publicKey() && !needsRenewal(cur, time.Now()) {
		return nil
	}
	if !st.Allocates() && cur == nil {
		return fmt.Errorf("this CA host holds the CA key but does not allocate subnets (no %s/allocations.json) and has no certificate: sign one with `weft ca sign` and set pki.cert", filepath.Join(a.cfg.StateDir, stateEnrollDir))
	}
	var g enroll.Grant
	if st.Allocates() {
		g, err = st.Issue(a.cfg.Name, a.publicKey(), a.cfg.Groups, time.Now())
	} else {
		g, err = a.renewOwnOnCAHost(cur)
	}
	if err != nil {
		return err
	}
	a.log.Info("issued this CA host's own certificate", "prefixes", g.Cert.Prefixes, "not_after", g.Cert.NotAfter)
	return writeCert(a.cfg.PKI.Cert, g.Cert)
}

// renewOwnOnCAHost re-signs this CA host's certificate with its own prefixes and groups.
func (a *Agent) renewOwnOnCAHost(cur *identity.Certificate) (enroll.Grant, error) {
	ca, _ := a.enr.store.CA()
	pool, err := identity.NewCAPool(ca)
	if err != nil {
		return enroll.Grant{}, err
	}
	cl, err := identity.Verify(cur, pool, cur.NotBefore.Add(time.Second), nil) // expired is fine: we hold the key
	if err != nil {
		return enroll.Grant{}, fmt.Errorf("this host's certificate %s: %w", a.cfg.PKI.Cert, err)
	}
	g, why := a.enr.store.Renew(cl, time.Now())
	if why != 0 {
		return enroll.Grant{}, fmt.Errorf("renew this host's certificate: %s", why)
	}
	return g, nil
}

// needsRenewal: a certificate renews once two thirds of its validity have passed.
func needsRenewal(c *identity.Certificate, now time.Time) bool {
	total := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Sub(now) < total/3
}

func writeCert(path string, c *identity.Certificate) error {
	b, err := c.MarshalPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, b, 0o644)
}

// caHostAddr is the enroll address of the host of a join address (HOST or HOST:PORT).
func caHostAddr(join string) (string, error) {
	host, _, err := config.SplitHostPort(join, 0)
	if err != nil || host == "" {
		return "", fmt.Errorf("join address %q: want HOST or HOST:PORT", join)
	}
	return net.JoinHostPort(host, strconv.Itoa(config.DefaultEnrollPort)), nil
}

// completeEnrollment (Run, before gossip) enrolls a pending joiner: it tries the CA host
// until it answers (retry_interval, retry_max), stops at once on a refusal or a CA that is
// not the token's, stores what it received and loads the pki.
func (a *Agent) completeEnrollment(ctx context.Context) error {
	if a.enr == nil || !a.enr.pending {
		return nil
	}
	tok, err := identity.ParseToken(a.cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("join_token: %w", err)
	}
	addrs := append(append([]string(nil), a.cfg.Gossip.Join...), a.cfg.Gossip.RetryJoin...)
	for attempt := 1; ; attempt++ {
		var lastErr error
		for _, j := range addrs {
			addr, err := caHostAddr(j)
			if err != nil {
				return err
			}
			r, err := enroll.Enroll(ctx, addr, tok, a.cfg.Name, a.publicKey())
			if err == nil {
				return a.storeEnrollment(addr, r)
			}
			var re *enroll.RefusedError
			if errors.As(err, &re) || errors.Is(err, enroll.ErrWrongCA) || errors.Is(err, enroll.ErrImpostor) {
				return fmt.Errorf("enrollment: %w", err)
			}
			lastErr = err
			a.log.Warn("enrollment: CA host not reached; retrying", "addr", addr, "err", err)
		}
		if a.cfg.Gossip.RetryMax > 0 && attempt >= a.cfg.Gossip.RetryMax {
			return fmt.Errorf("enrollment: gave up after %d attempts: %w", attempt, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.Gossip.RetryInterval.Duration):
		}
	}
}

// storeEnrollment writes the grant into the state directory and loads the pki from it.
func (a *Agent) storeEnrollment(addr string, r *enroll.Result) error {
	sp := func(n string) string { return filepath.Join(a.cfg.StateDir, n) }
	if err := writeCert(sp(stateCACert), r.CA); err != nil {
		return err
	}
	if err := writeCert(sp(stateHostCert), r.Cert); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(sp(stateGossipKey), []byte(base64.StdEncoding.EncodeToString(r.GossipKey)+"\n"), 0o600); err != nil {
		return err
	}
	b, _ := json.Marshal(enrolled{CAHost: addr, ClusterCIDR: r.Cluster})
	if err := fsutil.WriteFileAtomic(sp(stateEnrolledAs), b, 0o600); err != nil {
		return err
	}
	a.mu.Lock()
	if en := stateDefaults(&a.cfg); en != nil {
		a.enr.caHost = en.CAHost
	}
	a.mu.Unlock()
	st, err := loadPKI(a.cfg.PKI, a.cfg.Name, a.publicKey(), time.Now())
	if err != nil {
		return fmt.Errorf("enrollment: the certificate received does not load: %w", err)
	}
	a.pki.Store(st)
	a.enr.pending = false
	a.log.Info("enrolled", "ca_host", addr, "certificate", st.OwnClaims.Fingerprint, "prefixes", st.OwnClaims.Prefixes, "groups", st.OwnClaims.Groups, "not_after", st.OwnClaims.NotAfter)
	return nil
}

// startEnrollment (Run) serves enrollment on a CA host and starts the renewal loop of every
// host with a certificate it can renew.
func (a *Agent) startEnrollment(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var stops []func()
	stop = func() {
		cancel()
		for _, s := range stops {
			s()
		}
	}
	if a.enr == nil {
		return stop, nil
	}
	if a.enr.store != nil && a.cfg.Enroll.Listen != "" {
		srv, err := enroll.NewServer(enroll.DefaultConfig(), a.enr.store, a.log.With("subsystem", "enroll"))
		if err != nil {
			return stop, err
		}
		ln, err := net.Listen("tcp", a.cfg.Enroll.Listen)
		if err != nil {
			return stop, fmt.Errorf("enroll.listen %s: %w (another agent there? set enroll.listen, or empty to serve no enrollment)", a.cfg.Enroll.Listen, err)
		}
		a.enr.srv = srv
		go func() { _ = srv.Serve(ln) }()
		stops = append(stops, func() { _ = srv.Close() })
		a.log.Info("serving enrollment", "listen", ln.Addr().String(), "allocates", a.enr.store.Allocates())
	}
	if a.enr.store != nil || a.enr.caHost != "" {
		done := make(chan struct{})
		go func() { defer close(done); a.renewLoop(ctx) }()
		stops = append(stops, func() { <-done })
	}
	return stop, nil
}

// renewLoop renews this host's certificate after two thirds of its validity: checked every
// twentieth of it (between a second and a minute); a failure is retried at the next check.
func (a *Agent) renewLoop(ctx context.Context) {
	for {
		wait := time.Minute
		if st := a.pki.Load(); st != nil && st.Own != nil {
			wait = min(max(st.Own.NotAfter.Sub(st.Own.NotBefore)/20, time.Second), time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		st := a.pki.Load()
		if st == nil || st.Own == nil || !needsRenewal(st.Own, time.Now()) {
			continue
		}
		if err := a.renew(ctx, st.Own); err != nil {
			a.log.Error("certificate renewal failed; retrying", "err", err, "not_after", st.Own.NotAfter)
			a.problem(fmt.Sprintf("certificate renewal failed: %v", err))
		}
	}
}

// renew gets a renewed certificate (from the CA host, or signed here on a CA host), writes
// it and reloads the pki.
func (a *Agent) renew(ctx context.Context, cur *identity.Certificate) error {
	var g *identity.Certificate
	if a.enr.store != nil {
		gr, err := a.renewOwnOnCAHost(cur)
		if err != nil {
			return err
		}
		g = gr.Cert
	} else {
		ca, err := identity.LoadCertificateFile(a.cfg.PKI.CA)
		if err != nil {
			return err
		}
		fp, err := ca.Fingerprint()
		if err != nil {
			return err
		}
		r, err := enroll.Renew(ctx, a.enr.caHost, fp, cur, a.priv)
		if err != nil {
			return err
		}
		g = r.Cert
	}
	if err := writeCert(a.cfg.PKI.Cert, g); err != nil {
		return err
	}
	if err := a.reloadPKI(); err != nil {
		return err
	}
	a.log.Info("certificate renewed", "not_after", g.NotAfter)
	return nil
}

// caStore is the CA host's store (nil elsewhere).
func (a *Agent) caStore() *enroll.Store {
	if a.enr == nil {
		return nil
	}
	return a.enr.store
}

// errNotCAHost answers the token API on a host without the CA key.
var errNotCAHost = errors.New("this agent is not a CA host (it holds no CA key): run `weft token` on the host where `weft init` ran")

// tokenRoutes serves the join tokens of a CA host (api/client_tokens.go).
func (a *Agent) tokenRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		st := a.caStore()
		if st == nil {
			jsonhttp.WriteError(w, http.StatusConflict, errNotCAHost)
			return
		}
		l := api.TokenList{Tokens: []api.TokenInfo{}, Allocations: []api.TokenAllocation{}, Counters: map[string]uint64{}}
		for _, t := range st.Tokens() {
			l.Tokens = append(l.Tokens, api.TokenInfo(t))
		}
		for _, al := range st.Allocations() {
			l.Allocations = append(l.Allocations, api.TokenAllocation{Name: al.Name, PublicKey: al.PublicKey, Prefix: al.Prefix.String(), Issued: al.Issued})
		}
		if a.enr != nil && a.enr.srv != nil {
			l.Counters = a.enr.srv.Stats()
		}
		jsonhttp.WriteJSON(w, http.StatusOK, l)
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		st := a.caStore()
		if st == nil {
			jsonhttp.WriteError(w, http.StatusConflict, errNotCAHost)
			return
		}
		var req api.TokenRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&req); err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad token request: %w", err))
			return
		}
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("--ttl %q: a duration like 1h: %w", req.TTL, err))
			return
		}
		tok, info, err := st.CreateToken(req.Groups, ttl, req.Uses, time.Now())
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, api.TokenCreated{Token: tok.String(), Info: api.TokenInfo(info),
			Join: fmt.Sprintf("weft agent --join-token %s --retry-join %s", tok, a.joinAddr())})
	})
	mux.HandleFunc("DELETE /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		st := a.caStore()
		if st == nil {
			jsonhttp.WriteError(w, http.StatusConflict, errNotCAHost)
			return
		}
		id, err := identity.ParseTokenID(r.PathValue("id"))
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		if err := st.Revoke(id); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, enroll.ErrNoToken) {
				code = http.StatusNotFound
			}
			jsonhttp.WriteError(w, code, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
}

// joinAddr is the address a new host passes to --retry-join: this host's gossip address.
func (a *Agent) joinAddr() string {
	for _, m := range a.Members() {
		if m.Name == a.cfg.Name && m.Addr != "" {
			host, _, err := net.SplitHostPort(m.Addr)
			if ip, err2 := netip.ParseAddr(host); err == nil && err2 == nil && !ip.IsUnspecified() {
				return host
			}
		}
	}
	return "ADDRESS_OF_THIS_HOST"
}
