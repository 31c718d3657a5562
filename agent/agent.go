package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/agent/clients"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/containers"
	"github.com/weftnet/weft/agent/datapath"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/agent/metrics"
	"github.com/weftnet/weft/agent/netpolicy"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
)

// Agent is one host's weft daemon. New prepares it; Run brings everything up, serves until
// its context ends or a leave is requested, then tears everything down in reverse order.
type Agent struct {
	cfg config.Config
	log *slog.Logger

	priv crypto.PrivateKey
	pub  atomic.Pointer[crypto.PublicKey] // priv's public key, computed once (publicKey)
	id   *crypto.Identity

	table *peers.Table
	dp    datapath.Datapath // chosen once in New (wire_datapath.go)
	dpUp  atomic.Bool       // dp started: the device exists
	gsp   *gossip.Gossip    // nil when gossip is disabled (wire_gossip.go)
	api   *apiServer
	cat   *catalogGlue              // nil until the catalog starts
	pki   atomic.Pointer[trust.PKI] // nil without pki.ca; swapped by reloadPKI (wire_trust.go)
	pol   *netpolicy.Policy         // network policy (policy.go); nil until Run
	ctr   *containers.Containers    // container networking (wire_edges.go)
	enr   *enrollment               // CA host, joiner, renewals (wire_enroll.go)
	cl    *clients.Clients          // stock WireGuard clients (wire_edges.go)

	httpRefused metrics.HTTPRefusals   // what the metrics, pprof, Consul API and console listeners refused
	uiURL       atomic.Pointer[string] // the web console's URL while it serves (wire_console.go)

	started time.Time
	address netip.Addr
	subnet  netip.Prefix
	port    uint16

	leaveOnce sync.Once
	leaving   chan struct{}
	fatal     chan error       // a background part that cannot go on (retry_join gave up)
	rj        gossip.RetryJoin // wire_gossip.go

	reloadSrc func() (config.Config, error) // reload.go; guarded by mu
	level     *slog.LevelVar

	mu       sync.Mutex
	problems []string

	// tapMode is how the datapath opened the TAP (wire_datapath.go), stored before dpUp; nil in L3.
	tapMode atomic.Pointer[tap.Mode]
	// tunMode is which TUN device L3 opened (tunnel.CreateTUN), stored before dpUp; nil in L2.
	tunMode atomic.Pointer[string]
}

// New finds the underlay (FollowUnderlay), validates cfg and loads (or creates) the private key; nothing is opened yet.
func New(cfg config.Config, log *slog.Logger) (*Agent, error) {
	found := followUnderlay(&cfg, newUnderlayLookup()) // the MTU follows the underlay (wire_mtu.go)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	logMTU(log, &cfg, found)
	a := &Agent{cfg: cfg, log: log, leaving: make(chan struct{}), fatal: make(chan error, 1)}
	if err := a.loadKey(); err != nil {
		return nil, err
	}
	a.dp = newDatapath(a)
	a.cl, a.ctr = newClients(a), newContainers(a)
	if err := a.prepareEnrollment(); err != nil { // may point pki at the state directory
		return nil, err
	}
	st, err := loadPKI(a.cfg.PKI, cfg.Name, a.publicKey(), time.Now())
	if err != nil {
		return nil, err
	}
	if st != nil && cfg.Subnet.IsValid() && !st.OwnClaims.AllowsPrefix(cfg.Subnet.Prefix) {
		return nil, fmt.Errorf("subnet %s is not covered by pki.cert (it allows %v): the other hosts would refuse it; sign a certificate with --subnet %s, or drop subnet", cfg.Subnet, st.OwnClaims.Prefixes, cfg.Subnet)
	}
	a.pki.Store(st)
	if st != nil {
		for _, w := range st.Warnings(time.Now()) {
			a.log.Warn(w)
		}
	}
	return a, nil
}

func (a *Agent) keyPath() string {
	if a.cfg.PrivateKeyFile != "" {
		return a.cfg.PrivateKeyFile
	}
	return filepath.Join(a.cfg.StateDir, "private.key")
}

// loadKey reads the private key, generating and saving one (0600) on first start.
func (a *Agent) loadKey() error {
	path := a.keyPath()
	priv, err := crypto.LoadPrivateKeyFile(path)
	switch {
	case err == nil:
		a.priv = priv
		return nil
	case errors.Is(err, os.ErrNotExist):
		if priv, err = crypto.GeneratePrivateKey(); err != nil {
			return fmt.Errorf("generate private key: %w", err)
		}
		if err := crypto.SavePrivateKeyFile(path, priv); err != nil {
			return fmt.Errorf("save private key: %w (run the agent as root, or set state_dir / --state-dir to a writable directory)", err)
		}
		a.log.Info("generated a new private key", "path", path, "public_key", priv.Public().String())
		a.priv = priv
		return nil
	default:
		return err
	}
}

// PublicKey is this host's public key.
func (a *Agent) PublicKey() crypto.PublicKey { return a.publicKey() }

// Run brings the agent up and serves until ctx is done or Leave is called.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = time.Now()
	a.id = crypto.NewIdentity(a.priv)
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	closers = append(closers, a.id.Close)

	a.table = peers.NewTable(a.id)
	if err := a.completeEnrollment(ctx); err != nil { // a joiner's certificate, before gossip
		return err
	}

	if !a.cfg.Gossip.Disabled {
		g, err := a.startGossip()
		if err != nil {
			return err
		}
		a.gsp = g
		closers = append(closers, g.Shutdown)
		a.subnet = g.Subnet()
		if !a.subnet.IsValid() && a.cfg.Subnet.IsValid() {
			// Our static subnet is withdrawn (another host claimed it first): come up on it
			// anyway, so the operator can look; `weft status` shows the conflict.
			a.subnet = a.cfg.Subnet.Prefix
		}
		if err := g.Cluster().Err(); err != nil {
			a.problem(err.Error())
		}
		if !a.subnet.IsValid() && !a.cfg.Address.IsValid() {
			if err := g.Cluster().Err(); errors.Is(err, membership.ErrNoFreeSubnet) {
				return fmt.Errorf("no overlay subnet: %w", err) // it names the settings that make room
			}
			return fmt.Errorf("no overlay subnet: %v (widen cluster_cidr or set subnet)", g.Cluster().Err())
		}
	} else {
		a.subnet = a.cfg.Subnet.Prefix
	}
	a.address = a.cfg.Address.Addr
	if !a.address.IsValid() {
		if !a.subnet.IsValid() {
			return errors.New("no overlay address: set address or subnet")
		}
		a.address = a.subnet.Masked().Addr().Next()
	}
	if a.pol, err = newPolicy(a); err != nil {
		return err
	}
	if err := a.pol.Start(); err != nil {
		return err
	}

	if err := a.startDatapath(); err != nil {
		return err
	}
	closers = append(closers, a.stopDatapath)

	stopContainers, err := a.startContainers()
	if err != nil {
		return err
	}
	closers = append(closers, stopContainers)

	for _, p := range a.cfg.Peers {
		if err := a.addStaticPeer(p); err != nil {
			return err
		}
	}
	closers = append(closers, a.stopClients)
	if err := a.startClients(); err != nil {
		return err
	}

	cat, err := startCatalog(a)
	if err != nil {
		return err
	}
	a.cat = cat
	closers = append(closers, cat.close)
	a.pol.Run(ctx)
	closers = append(closers, a.pol.Close)

	stopNS, err := a.startNetstackServices()
	if err != nil {
		return err
	}
	closers = append(closers, stopNS)

	if a.cfg.MetricsListen != "" {
		stop, err := serveMetrics(a.cfg.MetricsListen, a, a.log)
		if err != nil {
			return fmt.Errorf("metrics_listen %s: %w", a.cfg.MetricsListen, err)
		}
		closers = append(closers, stop)
	}

	if a.cfg.Debug.PprofListen != "" {
		stop, err := servePprof(a.cfg.Debug, &a.httpRefused, a.log)
		if err != nil {
			return fmt.Errorf("debug.pprof_listen %s: %w", a.cfg.Debug.PprofListen, err)
		}
		closers = append(closers, stop)
	}

	stopConsole, err := a.startConsole() // wire_console.go
	if err != nil {
		return err
	}
	closers = append(closers, stopConsole)

	api, err := newAPIServer(a.cfg.ControlSocket, a, a.log)
	if err != nil {
		return err
	}
	a.api = api
	closers = append(closers, func() { _ = api.Close() })

	stopEnroll, err := a.startEnrollment(ctx)
	closers = append(closers, stopEnroll)
	if err != nil {
		return err
	}

	a.log.Info("weft agent up", "name", a.cfg.Name, "public_key", a.publicKey().String(),
		"address", a.address, "subnet", a.subnet, "interface", a.cfg.Interface, "port", a.port, "mode", a.cfg.Mode)
	if a.gsp != nil {
		a.gsp.Start()
		// Stop handling membership first on the way down: its events touch the catalog,
		// the peer table and the device, which the closers above tear down.
		closers = append(closers, a.gsp.Shutdown)
		if len(a.cfg.Gossip.RetryJoin) > 0 {
			closers = append(closers, a.startRetryJoin())
		}
	}
	// The device, gossip and the API are up: tell systemd (Type=notify), and say so first
	// on the way down (sdnotify.go).
	sdNotify("READY=1")
	closers = append(closers, func() { sdNotify("STOPPING=1") }, startWatchdog())

	select {
	case <-ctx.Done():
		a.log.Info("stopping")
	case <-a.leaving:
		a.log.Info("left the cluster; stopping")
	case err := <-a.fatal:
		a.log.Error("stopping", "err", err)
		return err
	}
	return nil
}

// startDatapath opens the device and the UDP port and starts the packet loops.
func (a *Agent) startDatapath() error {
	port, err := a.dp.Start()
	if err != nil {
		return err
	}
	a.port = port
	a.dpUp.Store(true)
	return nil
}

// linkBits is the prefix length of the device's address: the cluster CIDR's, so the whole
// overlay is on-link through the device; else the static subnet's when it holds the address;
// else a host route.
func (a *Agent) linkBits() int {
	switch {
	case a.cfg.ClusterCIDR.Contains(a.address):
		return a.cfg.ClusterCIDR.Bits()
	case a.cfg.Subnet.IsValid() && a.cfg.Subnet.Contains(a.address):
		return a.cfg.Subnet.Bits()
	}
	return a.address.BitLen()
}

func (a *Agent) stopDatapath() { a.dp.Close() }

func (a *Agent) addStaticPeer(p config.PeerConfig) error { return a.dp.AddStatic(p) }

// problem records a condition shown by `weft status` until the agent restarts.
func (a *Agent) problem(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.problems {
		if p == msg {
			return
		}
	}
	a.problems = append(a.problems, msg)
}

// onSubnetChanged moves the device's address when the allocator moved this host's subnet
// (a conflict lost to a lower key) and the address was derived from it; the client guard
// follows the subnet either way.
func (a *Agent) onSubnetChanged(sn netip.Prefix) {
	a.mu.Lock()
	old, oldSubnet := a.address, a.subnet
	derived := !a.cfg.Address.IsValid()
	a.subnet = sn
	if derived && sn.IsValid() {
		a.address = sn.Masked().Addr().Next()
	}
	addr := a.address
	a.mu.Unlock()
	if sn.IsValid() && sn != oldSubnet {
		a.clientsMoved(sn) // the client guard follows the subnet, also with a fixed address
	}
	if !derived || addr == old || !a.dpUp.Load() {
		return
	}
	if a.cfg.Netstack {
		// The userspace stack keeps the address it was created with.
		a.problem(fmt.Sprintf("overlay address moved from %s to %s: restart the agent (netstack mode cannot move it live)", old, addr))
		return
	}
	if err := moveAddress(a.cfg.Interface, old, addr, a.cfg.ClusterCIDR.Bits()); err != nil {
		a.log.Error("move overlay address", "from", old, "to", addr, "err", err)
		return
	}
	a.log.Info("overlay address moved", "from", old, "to", addr)
	a.containersMoved()
	if a.cat != nil {
		_ = a.cat.cat.UpdateNode(a.cfg.Name, addr, a.cat.cat.Tag())
		a.cat.svc.Rebind(addr)
	}
}

// publicKey is this host's public key. Deriving it is a scalar multiplication (~50 µs):
// it is computed once, not for every member event that checks a claim against it.
func (a *Agent) publicKey() crypto.PublicKey {
	if p := a.pub.Load(); p != nil {
		return *p
	}
	k := a.priv.Public()
	if a.priv != (crypto.PrivateKey{}) {
		a.pub.Store(&k)
	}
	return k
}
