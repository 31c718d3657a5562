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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultCatalogBudget is the room for the catalog tag: Serf's node metadata holds 512
// bytes and the node-info tag, the keys and msgpack framing take the rest.
const DefaultCatalogBudget = 420

// Named errors of the catalog.
var (
	// ErrCatalogFull: the registration would push the catalog tag past its budget.
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
	// Budget is the most bytes the catalog tag value may take; 0 means
	// DefaultCatalogBudget. Registrations are admitted against the tag's worst case
	// (every checked service critical), so health changes never overflow it.
	Budget int
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
	cfg    CatalogConfig
	log    *slog.Logger
	budget int

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
	addr     netip.Addr
	tag      string
	services []ServiceHealth
}

// NewCatalog loads the persisted registrations, starts their checks and publishes them.
func NewCatalog(cfg CatalogConfig) (*Catalog, error) {
	if cfg.Budget < 0 {
		return nil, fmt.Errorf("catalog: catalog budget %d < 0", cfg.Budget)
	}
	c := &Catalog{
		cfg:       cfg,
		log:       cfg.Logger,
		budget:    cfg.Budget,
		local:     make(map[string]*localEntry),
		remote:    make(map[string]*remoteNode),
		localAddr: cfg.Addr,
		index:     1,
		changed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		pubDone:   make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.budget == 0 {
		c.budget = DefaultCatalogBudget
	}
	saved, err := loadServices(cfg.StatePath)
	if err != nil {
		return nil, err
	}
	if n, err := worstCaseCatalogLen(saved); err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", cfg.StatePath, err)
	} else if n > c.budget {
		return nil, fmt.Errorf("catalog: %s: %w: the saved services need %d bytes, %d over the %d-byte budget; remove some from the file",
			cfg.StatePath, ErrCatalogFull, n, n-c.budget, c.budget)
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

// Register adds or replaces a local service. It is published before it is kept: if the
// new tag would pass the budget (ErrCatalogFull, saying by how many bytes) or Publish
// fails, nothing changes. Registering an identical service again is a no-op; replacing
// a service with the same check keeps the check's state, a new check starts critical.
func (c *Catalog) Register(s Service) error {
	s = s.Normalized()
	if err := s.Validate(); err != nil {
		return err
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	if !AddressAllowed(c.localAddr, s.Address) {
		c.mu.Unlock()
		return fmt.Errorf("register %q: %w: %s is not in this host's subnet %s; name a container's address on this host",
			s.Name, ErrForeignAddress, s.Address, netip.PrefixFrom(c.localAddr, ServiceAddressBits).Masked())
	}
	old := c.local[s.Name]
	if old != nil && reflect.DeepEqual(old.svc, s) {
		c.mu.Unlock()
		return nil
	}
	set := c.localServicesLocked()
	set = slices.DeleteFunc(set, func(x Service) bool { return x.Name == s.Name })
	set = append(set, s)
	if n, err := worstCaseCatalogLen(set); err != nil {
		c.mu.Unlock()
		return err
	} else if n > c.budget {
		c.mu.Unlock()
		return fmt.Errorf("register %q: %w: the catalog tag would need %d bytes, %d over the %d-byte budget; deregister a service or use shorter names and tags",
			s.Name, ErrCatalogFull, n, n-c.budget, c.budget)
	}
	e := c.newEntry(s)
	if old != nil && old.svc.Check != nil && reflect.DeepEqual(old.svc.Check, s.Check) {
		// Same check, other fields changed: keep its state rather than start critical.
		e.m, e.output = old.m, old.output
	}
	c.local[s.Name] = e
	tag := c.tagLocked()
	if old != nil {
		c.local[s.Name] = old
	} else {
		delete(c.local, s.Name)
	}
	oldTag := c.tagLocked()
	c.mu.Unlock()

	if err := c.commit(tag, oldTag, set); err != nil {
		return fmt.Errorf("register %q: %w", s.Name, err)
	}
	c.mu.Lock()
	c.local[s.Name] = e
	c.bumpLocked()
	c.mu.Unlock()
	if old != nil && old.runner != nil {
		old.runner.stop()
	}
	if e.runner != nil {
		e.runner.start()
	}
	c.log.Info("service registered", "service", s.Name, "port", s.Port)
	return nil
}

// Deregister removes a local service (ErrUnknownService if there is none).
func (c *Catalog) Deregister(name string) error {
	name = strings.ToLower(name)
	c.pubMu.Lock()
	defer c.pubMu.Unlock()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	old := c.local[name]
	if old == nil {
		c.mu.Unlock()
		return fmt.Errorf("deregister %q: %w", name, ErrUnknownService)
	}
	oldTag := c.tagLocked()
	delete(c.local, name)
	tag := c.tagLocked()
	set := c.localServicesLocked()
	c.local[name] = old
	c.mu.Unlock()

	if err := c.commit(tag, oldTag, set); err != nil {
		return fmt.Errorf("deregister %q: %w", name, err)
	}
	c.mu.Lock()
	delete(c.local, name)
	c.bumpLocked()
	c.mu.Unlock()
	if old.runner != nil {
		old.runner.stop()
	}
	c.log.Info("service deregistered", "service", name)
	return nil
}

// commit publishes tag and persists set; if persisting fails it publishes oldTag again.
// Called with pubMu held.
func (c *Catalog) commit(tag, oldTag string, set []Service) error {
	if err := c.publish(tag); err != nil {
		return err
	}
	if err := saveServices(c.cfg.StatePath, set); err != nil {
		if perr := c.publish(oldTag); perr != nil {
			c.log.Warn("catalog: restoring the previous tag failed", "err", perr)
		}
		return err
	}
	return nil
}

func (c *Catalog) publish(tag string) error {
	if c.cfg.Publish == nil {
		return nil
	}
	if err := c.cfg.Publish(tag); err != nil {
		if len(tag) > c.budget {
			return fmt.Errorf("publish catalog tag: %w (%d bytes, %d over budget; deregister a service or use shorter names and tags): %w", ErrCatalogFull, len(tag), len(tag)-c.budget, err)
		}
		return fmt.Errorf("publish catalog tag (%d bytes): %w", len(tag), err)
	}
	return nil
}

// Renew passes a ttl check and restarts its timer.
func (c *Catalog) Renew(name string) error {
	return c.setTTL("renew", name, HealthPassing, "renewed at "+time.Now().UTC().Format(time.RFC3339))
}

// setTTL records h and output on the ttl check of service name and restarts its timer;
// verb names the operation in errors.
func (c *Catalog) setTTL(verb, name string, h Health, output string) error {
	name = strings.ToLower(name)
	c.mu.Lock()
	e := c.local[name]
	switch {
	case c.closed:
		c.mu.Unlock()
		return net.ErrClosed
	case e == nil:
		c.mu.Unlock()
		return fmt.Errorf("%s %q: %w", verb, name, ErrUnknownService)
	case e.svc.Check == nil || e.svc.Check.Kind != CheckTTL:
		c.mu.Unlock()
		return fmt.Errorf("%s %q: %w", verb, name, ErrNotTTL)
	}
	e.output = output
	changed := e.m.observe(h)
	if changed {
		c.bumpLocked()
	}
	c.mu.Unlock()
	e.runner.renewed()
	if changed {
		c.log.Info("service health changed", "service", name, "health", h)
		c.kickPublisher()
	}
	return nil
}

// observe is a check runner's report of one probe result.
func (c *Catalog) observe(r *checkRunner, h Health, output string) {
	c.mu.Lock()
	var e *localEntry
	for _, x := range c.local {
		if x.runner == r {
			e = x
			break
		}
	}
	if e == nil || c.closed {
		c.mu.Unlock()
		return
	}
	e.output = output
	changed := e.m.observe(h)
	if changed {
		c.bumpLocked()
	}
	now := e.m.health
	c.mu.Unlock()
	if changed {
		c.log.Info("service health changed", "service", e.svc.Name, "health", now, "output", output)
		c.kickPublisher()
	}
}

func (c *Catalog) kickPublisher() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// publisher re-publishes the latest tag after health changes, retrying failures.
func (c *Catalog) publisher() {
	defer close(c.pubDone)
	var retry <-chan time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		case <-retry:
		}
		retry = nil
		c.pubMu.Lock()
		c.mu.Lock()
		tag := c.tagLocked()
		c.mu.Unlock()
		err := c.publish(tag)
		c.pubMu.Unlock()
		if err != nil {
			c.log.Warn("catalog: publishing health failed; retrying", "err", err)
			retry = time.After(publishRetry)
		}
	}
}

// tagLocked encodes the local services with their current health.
func (c *Catalog) tagLocked() string {
	shs := make([]ServiceHealth, 0, len(c.local))
	for _, e := range c.local {
		shs = append(shs, ServiceHealth{Service: e.svc, Health: e.health()})
	}
	tag, err := EncodeCatalog(shs)
	if err != nil { // every local service was validated
		panic("catalog: encoding validated services: " + err.Error())
	}
	return tag
}

func (c *Catalog) localServicesLocked() []Service {
	out := make([]Service, 0, len(c.local))
	for _, e := range c.local {
		out = append(out, e.svc)
	}
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Tag returns the current catalog tag value.
func (c *Catalog) Tag() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tagLocked()
}

// Local returns the local registrations and their health, sorted by name.
func (c *Catalog) Local() []LocalService {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]LocalService, 0, len(c.local))
	for _, e := range c.local {
		out = append(out, LocalService{Service: e.svc, Health: e.health(), Output: e.output})
	}
	slices.SortFunc(out, func(a, b LocalService) int { return strings.Compare(a.Service.Name, b.Service.Name) })
	return out
}

// UpdateNode records a member's address and catalog tag (on join and update events).
// For the local node only the address is taken: local state is authoritative. A tag that
// does not decode leaves the node with no services and returns the error (ErrBadCatalog).
func (c *Catalog) UpdateNode(node string, addr netip.Addr, tagValue string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node == c.cfg.Node && node != "" {
		if addr != c.localAddr {
			c.localAddr = addr
			c.bumpLocked()
		}
		return nil
	}
	if n := c.remote[node]; n != nil && n.addr == addr && n.tag == tagValue {
		return nil
	}
	services, err := DecodeCatalog(tagValue)
	// A service naming an address outside its node's subnet is forged: dropped, the rest kept.
	var foreign []string
	services = slices.DeleteFunc(services, func(sh ServiceHealth) bool {
		if AddressAllowed(addr, sh.Service.Address) {
			return false
		}
		foreign = append(foreign, sh.Service.Name+"@"+sh.Service.Address.String())
		c.foreign++
		return true
	})
	c.remote[node] = &remoteNode{addr: addr, tag: tagValue, services: services}
	c.bumpLocked()
	if err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	if len(foreign) > 0 {
		return fmt.Errorf("node %q (%s): %w: dropped %s", node, addr, ErrForeignAddress, strings.Join(foreign, ", "))
	}
	return nil
}

// ForeignAddressDrops counts the services of other members dropped for naming an address
// outside their node's subnet (each announcement once).
func (c *Catalog) ForeignAddressDrops() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.foreign
}

// RemoveNode forgets a member (on leave and failed events) and its services.
func (c *Catalog) RemoveNode(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.remote[node]; ok {
		delete(c.remote, node)
		c.bumpLocked()
	}
}

// Instances returns the instances of the named service, sorted by node; with
// onlyPassing, only those whose health is passing (warning is not passing).
func (c *Catalog) Instances(name string, onlyPassing bool) []Instance {
	name = strings.ToLower(name)
	var out []Instance
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eachLocked(func(in Instance) {
		if in.Service.Name == name && (!onlyPassing || in.Health == HealthPassing) {
			out = append(out, in)
		}
	})
	sortInstances(out)
	return out
}

// All returns every known instance, sorted by service name and node.
func (c *Catalog) All() []Instance {
	var out []Instance
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eachLocked(func(in Instance) { out = append(out, in) })
	sortInstances(out)
	return out
}

func sortInstances(in []Instance) {
	slices.SortFunc(in, func(a, b Instance) int {
		if c := strings.Compare(a.Service.Name, b.Service.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
}

func (c *Catalog) eachLocked(fn func(Instance)) {
	if c.cfg.Node != "" {
		for _, e := range c.local {
			s := e.svc
			s.Check = nil // instances look the same wherever they are listed
			fn(Instance{Node: c.cfg.Node, Addr: instanceAddr(c.localAddr, s), Service: s, Health: e.health()})
		}
	}
	for node, n := range c.remote {
		for _, sh := range n.services {
			fn(Instance{Node: node, Addr: instanceAddr(n.addr, sh.Service), Service: sh.Service, Health: sh.Health})
		}
	}
}

// instanceAddr is where an instance is reached: the service's own address (a container's)
// when it names one, its node's otherwise.
func instanceAddr(node netip.Addr, s Service) netip.Addr {
	if s.Address.IsValid() {
		return s.Address
	}
	return node
}

// Nodes returns the known node names (this node included when configured), sorted.
func (c *Catalog) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.remote)+1)
	if c.cfg.Node != "" {
		out = append(out, c.cfg.Node)
	}
	for n := range c.remote {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// NodeAddr returns a node's address (case-insensitive name).
func (c *Catalog) NodeAddr(node string) (netip.Addr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.Node != "" && strings.EqualFold(node, c.cfg.Node) {
		return c.localAddr, c.localAddr.IsValid()
	}
	if n, ok := c.remote[node]; ok {
		return n.addr, n.addr.IsValid()
	}
	for name, n := range c.remote {
		if strings.EqualFold(name, node) {
			return n.addr, n.addr.IsValid()
		}
	}
	return netip.Addr{}, false
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
type stateFile struct {
	Version  int       `json:"version"`
	Services []Service `json:"services"`
}

func loadServices(path string) ([]Service, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: load services: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("catalog: load services from %s: %w", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("catalog: load services from %s: unknown version %d", path, st.Version)
	}
	seen := make(map[string]bool)
	out := make([]Service, 0, len(st.Services))
	for _, s := range st.Services {
		s = s.Normalized()
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("catalog: load services from %s: %w", path, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("catalog: load services from %s: %q twice", path, s.Name)
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// saveServices writes the file atomically: a temporary file in the same directory,
// synced, then renamed over the old one.
func saveServices(path string, services []Service) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(stateFile{Version: 1, Services: services}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save services: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save services: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save services: %w", err)
	}
	return nil
}
