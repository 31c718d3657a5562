package catalog

// This node's registrations: Register and Deregister (published before kept), the TTL
// updates and check results that change their health, and the publisher goroutine that
// re-publishes the catalog tag after a health change. The locking rules are in catalog.go.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Register adds or replaces a local service. It is published before it is kept: if the
// catalog would pass its limits (ErrCatalogFull, saying by how much) or Publish fails,
// nothing changes. Registering an identical service again is a no-op; replacing a service
// with the same check keeps the check's state, a new check starts critical.
func (c *Catalog) Register(s Service) error {
	return c.RegisterAll([]Service{s})
}

// RegisterAll registers services as Register does, publishing once for all of them (a
// host's configured services at start): all are registered or, on an error, none.
func (c *Catalog) RegisterAll(services []Service) error {
	norm := make([]Service, 0, len(services))
	seen := map[string]bool{}
	for _, s := range services {
		s = s.Normalized()
		if err := s.Validate(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("register %q: %w: registered twice", s.Name, ErrInvalidService)
		}
		seen[s.Name] = true
		norm = append(norm, s)
	}
	if len(norm) == 0 {
		return nil
	}
	what := fmt.Sprintf("register %q", norm[0].Name)
	if len(norm) > 1 {
		what = fmt.Sprintf("register %d services", len(norm))
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	type change struct {
		old, e *localEntry
	}
	var changes []change
	for _, s := range norm {
		if !AddressAllowed(c.localAddr, s.Address, c.subnetBits()) {
			c.mu.Unlock()
			return fmt.Errorf("register %q: %w: %s is not in this host's subnet %s; name a container's address on this host",
				s.Name, ErrForeignAddress, s.Address, netip.PrefixFrom(c.localAddr, c.subnetBits()).Masked())
		}
		old := c.local[s.Name]
		if old != nil && reflect.DeepEqual(old.svc, s) {
			continue
		}
		e := c.newEntry(s)
		if old != nil && old.svc.Check != nil && reflect.DeepEqual(old.svc.Check, s.Check) {
			// Same check, other fields changed: keep its state rather than start critical.
			e.m, e.output = old.m, old.output
		}
		changes = append(changes, change{old, e})
	}
	if len(changes) == 0 {
		c.mu.Unlock()
		return nil
	}
	oldTag := c.tagLocked()
	for _, ch := range changes {
		c.local[ch.e.svc.Name] = ch.e
	}
	set := c.localServicesLocked()
	tag := c.tagLocked()
	restore := func() {
		for _, ch := range changes {
			if ch.old != nil {
				c.local[ch.e.svc.Name] = ch.old
			} else {
				delete(c.local, ch.e.svc.Name)
			}
		}
	}
	n, err := worstCaseCatalogLen(set)
	switch {
	case err != nil:
	case n > c.budget:
		err = fmt.Errorf("%s: %w: the catalog would need %d bytes, %d over the %d-byte limit (catalog.max_bytes); deregister a service or use shorter names and tags",
			what, ErrCatalogFull, n, n-c.budget, c.budget)
	case len(set) > c.maxServices:
		err = fmt.Errorf("%s: %w: this host would have %d services, more than the limit of %d (catalog.max_services); deregister some first",
			what, ErrCatalogFull, len(set), c.maxServices)
	}
	restore()
	c.mu.Unlock()
	if err != nil {
		return err
	}

	if err := c.commit(tag, oldTag, set); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c.mu.Lock()
	for _, ch := range changes {
		c.local[ch.e.svc.Name] = ch.e
	}
	c.bumpLocked()
	c.mu.Unlock()
	for _, ch := range changes {
		if ch.old != nil && ch.old.runner != nil {
			ch.old.runner.stop()
		}
		if ch.e.runner != nil {
			ch.e.runner.start()
		}
		level := slog.LevelInfo
		if len(changes) > 10 {
			level = slog.LevelDebug // one summary line below
		}
		c.log.Log(context.Background(), level, "service registered", "service", ch.e.svc.Name, "port", ch.e.svc.Port)
	}
	if len(changes) > 10 {
		c.log.Info("services registered", "services", len(changes))
	}
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
