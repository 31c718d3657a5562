package catalog

// The cluster's services as this node knows them: members' catalog tags recorded by
// UpdateNode and forgotten by RemoveNode, and the queries over them (Instances, All,
// Nodes, NodeAddr) that DNS and the Consul API answer from.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// UpdateNode records a member's address and catalog tag (on join and update events).
// For the local node only the address is taken: local state is authoritative. A tag that
// does not decode leaves the node with no services and returns the error (ErrBadCatalog).
func (c *Catalog) UpdateNode(node string, addr netip.Addr, tagValue string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localLocked(node, addr) {
		return nil
	}
	if n := c.remote[node]; n != nil && n.addr == addr && n.tag == tagValue {
		n.announced = tagValue
		return nil
	}
	services, err := DecodeCatalog(tagValue)
	n := &remoteNode{addr: addr, tag: tagValue, announced: tagValue}
	c.remote[node] = n
	ferr := c.setServicesLocked(node, n, services)
	if err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	return ferr
}

// localLocked reports whether node is this one; then only its address is taken (local
// state is authoritative).
func (c *Catalog) localLocked(node string, addr netip.Addr) bool {
	if node != c.cfg.Node || node == "" {
		return false
	}
	if addr != c.localAddr {
		c.localAddr = addr
		c.bumpLocked()
	}
	return true
}

// setServicesLocked gives n its services, dropping (and counting) those that name an
// address outside the node's subnet: forged, the rest kept.
func (c *Catalog) setServicesLocked(node string, n *remoteNode, services []ServiceHealth) error {
	var foreign []string
	n.services = slices.DeleteFunc(services, func(sh ServiceHealth) bool {
		if AddressAllowed(n.addr, sh.Service.Address, c.subnetBits()) {
			return false
		}
		foreign = append(foreign, sh.Service.Name+"@"+sh.Service.Address.String())
		c.foreign++
		return true
	})
	c.bumpLocked()
	if len(foreign) > 0 {
		if len(foreign) > 5 {
			foreign = append(foreign[:5], fmt.Sprintf("and %d more", len(foreign)-5))
		}
		return fmt.Errorf("node %q (%s): %w: dropped %s", node, n.addr, ErrForeignAddress, strings.Join(foreign, ", "))
	}
	return nil
}

// Announce records a member's address and a catalog tag that names its catalog by digest
// (OutOfBandPrefix) instead of carrying it. The services it had stay answered until
// ApplyNode installs the announced catalog; need reports whether that is still to come
// (the tag is not the one its services came from).
func (c *Catalog) Announce(node string, addr netip.Addr, tagValue string) (need bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localLocked(node, addr) {
		return false
	}
	n := c.remote[node]
	if n == nil {
		n = &remoteNode{}
		c.remote[node] = n
	}
	if n.addr != addr {
		n.addr = addr
		c.bumpLocked()
	}
	n.announced = tagValue
	return n.tag != tagValue
}

// ApplyNode installs the catalog a member announced by digest (Announce), once it has
// been assembled and verified against that tag. A tag the member no longer announces is
// ignored (stale: applied reports false).
func (c *Catalog) ApplyNode(node, tagValue string, services []ServiceHealth) (applied bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.remote[node]
	if n == nil || n.announced != tagValue || n.tag == tagValue {
		return false, nil
	}
	n.tag = tagValue
	return true, c.setServicesLocked(node, n, slices.Clone(services))
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
