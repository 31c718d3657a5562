package catalog

// Watches: the catalog index is a counter bumped on every change (a registration, a
// health transition, a member's tag or address). A blocking query (`?index=N&wait=30s`)
// calls Wait(ctx, N) and returns when the index passes N or the wait ends.

import (
	"context"
	"net"
	"reflect"
	"slices"
	"strings"
)

// Index returns the catalog's change counter. It starts at 1, so Wait(ctx, 0) returns
// at once, and only grows.
func (c *Catalog) Index() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

// Wait blocks until Index() > index and returns the new index. When ctx ends first it
// returns the current index and ctx.Err() (a blocking query answers with the unchanged
// state then); after Close it returns net.ErrClosed.
func (c *Catalog) Wait(ctx context.Context, index uint64) (uint64, error) {
	for {
		c.mu.Lock()
		cur, ch, closed := c.index, c.changed, c.closed
		c.mu.Unlock()
		if closed {
			return cur, net.ErrClosed
		}
		if cur > index {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return c.Index(), ctx.Err()
		case <-ch:
		}
	}
}

// bumpLocked records a change and wakes the waiters. Called with mu held.
func (c *Catalog) bumpLocked() {
	c.index++
	if !c.closed {
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// ChangeKind says how an instance changed between two snapshots.
type ChangeKind string

// Change kinds of DiffInstances.
const (
	InstanceAdded   ChangeKind = "added"
	InstanceRemoved ChangeKind = "removed"
	InstanceChanged ChangeKind = "changed" // health, address, port, tags or weight
)

// InstanceChange is one line of a watch: an instance that appeared, left or changed.
type InstanceChange struct {
	Kind ChangeKind `json:"kind"`
	// Instance is the new state (the old one for InstanceRemoved).
	Instance Instance `json:"instance"`
	// Old is the previous state of a changed instance.
	Old *Instance `json:"old,omitempty"`
}

// DiffInstances compares two snapshots (e.g. Catalog.All before and after a Wait) and
// returns the changes sorted by service and node. An instance is keyed by service name
// and node.
func DiffInstances(before, after []Instance) []InstanceChange {
	type key struct{ svc, node string }
	old := make(map[key]Instance, len(before))
	for _, in := range before {
		old[key{in.Service.Name, in.Node}] = in
	}
	var out []InstanceChange
	for _, in := range after {
		k := key{in.Service.Name, in.Node}
		prev, ok := old[k]
		delete(old, k)
		switch {
		case !ok:
			out = append(out, InstanceChange{Kind: InstanceAdded, Instance: in})
		case !reflect.DeepEqual(prev, in):
			out = append(out, InstanceChange{Kind: InstanceChanged, Instance: in, Old: &prev})
		}
	}
	for _, in := range old {
		out = append(out, InstanceChange{Kind: InstanceRemoved, Instance: in})
	}
	slices.SortFunc(out, func(a, b InstanceChange) int {
		if c := strings.Compare(a.Instance.Service.Name, b.Instance.Service.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance.Node, b.Instance.Node)
	})
	return out
}
