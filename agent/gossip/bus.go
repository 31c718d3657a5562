package gossip

import (
	"sync"

	"github.com/weftnet/weft/discovery/membership"
)

// Event is a member change as the glue hands it on, after the peer table followed it.
type Event struct {
	membership.Event
	// Replay marks a member's state replayed from the member list (at Start, after
	// dropped events, after a re-validation or a subnet change) rather than news: Type is
	// EventUpdate for a member that is present, EventReap for one that is gone entirely.
	// Subscribers that only act on news (a policy re-broadcast) skip it.
	Replay bool
}

// bus is the one fan-out of member changes: every subscriber sees every event, in the
// order of subscription, on the gossip event goroutine.
type bus struct {
	mu   sync.Mutex
	subs []func(Event)
}

func (b *bus) subscribe(f func(Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, f)
}

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	subs := b.subs
	b.mu.Unlock()
	for _, f := range subs {
		f(ev)
	}
}
