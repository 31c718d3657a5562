package discovery

// Watches: the catalog index is a counter bumped on every change (a registration, a
// health transition, a member's tag or address). A blocking query (`?index=N&wait=30s`)
// calls Wait(ctx, N) and returns when the index passes N or the wait ends.

import (
	"context"
	"net"
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
