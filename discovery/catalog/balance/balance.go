// Package balance picks one instance of a service for a client: weighted random or round
// robin over a list the caller fetched (from the agent's API, DNS SRV records, ...).
// It has no dependencies beyond the standard library.
package balance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ErrNoInstances is returned by Pick on an empty list.
var ErrNoInstances = errors.New("balance: no instances")

// Instance is one candidate endpoint. Weight ≤ 0 counts as 1.
type Instance struct {
	Addr   netip.AddrPort
	Weight int
}

// Strategy chooses how Pick picks.
type Strategy int

const (
	// WeightedRandom picks each instance with probability Weight/sum(Weight). Stateless
	// across clients, so many clients spread load without coordinating.
	WeightedRandom Strategy = iota
	// RoundRobin cycles through the instances in list order, ignoring weights.
	RoundRobin
)

// String returns "weighted-random" or "round-robin".
func (s Strategy) String() string {
	switch s {
	case WeightedRandom:
		return "weighted-random"
	case RoundRobin:
		return "round-robin"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// ParseStrategy parses "weighted-random" (or "random", "weighted") and "round-robin"
// (or "rr").
func ParseStrategy(s string) (Strategy, error) {
	switch strings.ToLower(s) {
	case "weighted-random", "weighted", "random":
		return WeightedRandom, nil
	case "round-robin", "roundrobin", "rr":
		return RoundRobin, nil
	}
	return 0, fmt.Errorf("balance: unknown strategy %q (want weighted-random or round-robin)", s)
}

// Picker picks instances; safe for concurrent use.
type Picker struct {
	strategy Strategy

	mu        sync.Mutex
	instances []Instance
	cum       []int // cumulative weights, for WeightedRandom
	next      int   // RoundRobin position
	rng       *rand.Rand
}

// New returns a Picker over a copy of instances, randomly seeded.
func New(s Strategy, instances []Instance) *Picker {
	return NewSeeded(s, instances, rand.Uint64())
}

// NewSeeded is New with a fixed seed, for reproducible tests and simulations.
func NewSeeded(s Strategy, instances []Instance, seed uint64) *Picker {
	p := &Picker{strategy: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	p.Update(instances)
	return p
}

// Strategy returns the picker's strategy.
func (p *Picker) Strategy() Strategy { return p.strategy }

// Update replaces the instance list (copied). Round robin continues from its position.
func (p *Picker) Update(instances []Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.instances = slices.Clone(instances)
	p.cum = p.cum[:0]
	total := 0
	for _, in := range p.instances {
		total += max(in.Weight, 1)
		p.cum = append(p.cum, total)
	}
}

// Len returns the number of instances.
func (p *Picker) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.instances)
}

// Pick returns one instance, or ErrNoInstances.
func (p *Picker) Pick() (Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.instances)
	if n == 0 {
		return Instance{}, ErrNoInstances
	}
	if p.strategy == RoundRobin {
		in := p.instances[p.next%n]
		p.next = (p.next + 1) % n
		return in, nil
	}
	r := p.rng.IntN(p.cum[n-1])
	i := sort.SearchInts(p.cum, r+1)
	return p.instances[i], nil
}
