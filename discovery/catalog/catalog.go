package catalog

// The catalog: this node's registrations (with their checks) and an index of every
// node's services, fed by membership events. Local registrations are authoritative here
// and published in this node's catalog tag; remote nodes' services come from their tags
// through UpdateNode/RemoveNode.
//
// Locks: pubMu serializes publishing (Register, Deregister and the publisher goroutine
// that re-publishes after health changes), so tags reach Serf in the order the state
// changed; mu guards the maps. pubMu is taken before mu, never the other way round, and
// no lock is held while a check runner is stopped (its report takes mu).

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// DefaultCatalogBudget is the room for a catalog carried in the tag itself: Serf's node
// metadata holds 512 bytes and the node-info tag, the keys and msgpack framing take the
// rest. A larger catalog is carried out of band (discovery/catalogdist).
const DefaultCatalogBudget = 420

// DefaultMaxServices and DefaultMaxBytes bound a node's catalog: its services, and the
// bytes of their encoding (the version-1 tag form, every checked service critical).
const (
	DefaultMaxServices = 1000
	DefaultMaxBytes    = 64 << 10
)

// Named errors of the catalog.
var (
	// ErrCatalogFull: the registration would push the catalog past its limits.
	ErrCatalogFull = errors.New("service catalog full")
	// ErrUnknownService: no local registration with that name.
	ErrUnknownService = errors.New("unknown service")
	// ErrNotTTL: Renew of a service whose check is not a ttl check.
	ErrNotTTL = errors.New("service has no ttl check")
)

// publishRetry is how long the publisher waits before retrying a failed publish.
const publishRetry = 5 * time.Second

// CatalogConfig configures NewCatalog.
type CatalogConfig struct {
	// Node is this node's name in gossip; local services are indexed under it. Empty:
	// local services are kept and published but not answered locally.
	Node string
	// Addr is this node's overlay address; UpdateNode(Node, addr, _) also sets it.
	Addr netip.Addr
	// Publish sets this node's catalog tag (CatalogTagKey) to the value; an empty value
	// means no services. It is called from NewCatalog, Register, Deregister and a
	// background goroutine, never concurrently. An error rejects a registration; when
	// the tag does not fit the gossip metadata, return an error wrapping ErrCatalogFull
	// (e.g. wrap the membership's ErrTagBudget) so callers see one error. Nil: nothing
	// is published (tests).
	Publish func(tagValue string) error
	// StatePath is the JSON file that keeps local registrations across restarts
	// (written atomically). Empty: nothing is persisted.
	StatePath string
	// Logger; nil discards.
	Logger *slog.Logger
	// SubnetBits is the prefix length of every node's subnet (the cluster's subnet_len);
	// 0 means ServiceAddressBits.
	SubnetBits int
	// MaxBytes is the most bytes the catalog's encoding may take; 0 means
	// DefaultMaxBytes. Registrations are admitted against the worst case (every checked
	// service critical), so health changes never overflow it.
	MaxBytes int
	// MaxServices is the most services this node may register; 0 means DefaultMaxServices.
	MaxServices int
}

// Instance is one service instance somewhere in the cluster.
type Instance struct {
	Node    string     `json:"node"`
	Addr    netip.Addr `json:"addr"`
	Service Service    `json:"service"`
	Health  Health     `json:"health"`
}

// LocalService is a local registration and the state of its check.
type LocalService struct {
	Service Service `json:"service"`
	Health  Health  `json:"health"`
	// Output is the last probe's output (truncated), empty without a check.
	Output string `json:"output,omitempty"`
}

// Catalog is the service catalog of one agent. Safe for concurrent use.
type Catalog struct {
	cfg         CatalogConfig
	log         *slog.Logger
	budget      int
	maxServices int

	pubMu sync.Mutex

	mu        sync.Mutex
	local     map[string]*localEntry
	remote    map[string]*remoteNode
	localAddr netip.Addr
	index     uint64
	changed   chan struct{} // closed and replaced on every change (watch.go)
	closed    bool
	foreign   uint64 // services dropped for naming an address outside their node's subnet

	kick     chan struct{} // publisher: the health of a local service changed
	quit     chan struct{}
	pubDone  chan struct{}
	closeMu  sync.Mutex
	isClosed bool

	// proberFor replaces the real probers in tests; nil in production.
	proberFor func(*CheckDef) prober
}

type localEntry struct {
	svc    Service
	m      checkMachine // health when svc.Check != nil
	output string
	runner *checkRunner
}

func (e *localEntry) health() Health {
	if e.svc.Check == nil {
		return HealthPassing
	}
	return e.m.health
}

type remoteNode struct {
	addr      netip.Addr
	tag       string // the tag services came from
	announced string // the tag the node announces now (a digest tag may not be applied yet)
	services  []ServiceHealth
}

// NewCatalog loads the persisted registrations, starts their checks and publishes them.
func NewCatalog(cfg CatalogConfig) (*Catalog, error) {
	if cfg.MaxBytes < 0 || cfg.MaxServices < 0 {
		return nil, fmt.Errorf("catalog: limits %d bytes, %d services: < 0", cfg.MaxBytes, cfg.MaxServices)
	}
	c := &Catalog{
		cfg:         cfg,
		log:         cfg.Logger,
		budget:      min(cfg.MaxBytes, MaxCatalogLen),
		maxServices: cfg.MaxServices,
		local:       make(map[string]*localEntry),
		remote:      make(map[string]*remoteNode),
		localAddr:   cfg.Addr,
		index:       1,
		changed:     make(chan struct{}),
		kick:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		pubDone:     make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.budget == 0 {
		c.budget = DefaultMaxBytes
	}
	if c.maxServices == 0 {
		c.maxServices = DefaultMaxServices
	}
	saved, err := loadServices(cfg.StatePath)
	if err != nil {
		return nil, err
	}
	if n, err := worstCaseCatalogLen(saved); err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", cfg.StatePath, err)
	} else if n > c.budget {
		return nil, fmt.Errorf("catalog: %s: %w: the saved services need %d bytes, %d over the %d-byte limit; remove some from the file",
			cfg.StatePath, ErrCatalogFull, n, n-c.budget, c.budget)
	} else if len(saved) > c.maxServices {
		return nil, fmt.Errorf("catalog: %s: %w: %d saved services, more than the limit of %d; remove some from the file",
			cfg.StatePath, ErrCatalogFull, len(saved), c.maxServices)
	}
	for _, s := range saved {
		c.local[s.Name] = c.newEntry(s)
	}
	if err := c.publish(c.tagLocked()); err != nil {
		return nil, err
	}
	for _, e := range c.local {
		if e.runner != nil {
			e.runner.start()
		}
	}
	go c.publisher()
	return c, nil
}

func (c *Catalog) newEntry(s Service) *localEntry {
	e := &localEntry{svc: s}
	if s.Check != nil {
		e.m = newCheckMachine(s.Check)
		e.runner = newCheckRunner(*s.Check, c.observe)
		if c.proberFor != nil {
			e.runner.probe, e.runner.closeFn = c.proberFor(&e.runner.def), nil
		}
	}
	return e
}

// Close stops the checks and the publisher and wakes every Wait (net.ErrClosed). The
// published tag is left as it is. Idempotent.
func (c *Catalog) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.isClosed {
		return nil
	}
	c.isClosed = true
	c.pubMu.Lock() // no Register is half-done
	c.mu.Lock()
	c.closed = true
	close(c.changed)
	var runners []*checkRunner
	for _, e := range c.local {
		if e.runner != nil {
			runners = append(runners, e.runner)
		}
	}
	c.mu.Unlock()
	c.pubMu.Unlock()
	for _, r := range runners {
		r.stop()
	}
	close(c.quit)
	<-c.pubDone
	return nil
}

// stateFile is the JSON layout of CatalogConfig.StatePath.

// subnetBits is the prefix length of a node's subnet.
func (c *Catalog) subnetBits() int {
	if c.cfg.SubnetBits == 0 {
		return ServiceAddressBits
	}
	return c.cfg.SubnetBits
}
