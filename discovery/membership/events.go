package membership

import (
	"net/netip"
	"sync/atomic"
)

// EventType says what happened.
type EventType uint8

// Event types. The first five mirror Serf's member events; the last two are
// about this host's own subnet.
const (
	// EventJoin: a member joined (or rejoined after failing or leaving).
	EventJoin EventType = iota + 1
	// EventUpdate: a member's tags changed (NodeInfo or catalog).
	EventUpdate
	// EventLeave: a member left gracefully.
	EventLeave
	// EventFailed: a member stopped answering probes.
	EventFailed
	// EventReap: a left or failed member was forgotten.
	EventReap
	// EventSubnetChanged: this host's announced subnet changed (Event.Subnet;
	// the zero Prefix when it was withdrawn).
	EventSubnetChanged
	// EventSubnetConflict: this host cannot use its subnet (Event.Err):
	// ErrSubnetConflict or ErrNoFreeSubnet. Cluster.Err returns it until resolved.
	EventSubnetConflict
	// EventUser: a user event some member broadcast (Event.Name, Event.Payload);
	// see Cluster.UserEvent. Anyone holding the gossip key can send one.
	EventUser
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	case EventReap:
		return "reap"
	case EventSubnetChanged:
		return "subnet-changed"
	case EventSubnetConflict:
		return "subnet-conflict"
	case EventUser:
		return "user"
	}
	return "unknown"
}

// Event is one membership change.
type Event struct {
	Type EventType
	// Member is the member concerned (member events), or the local member.
	Member Member
	// Subnet is the local subnet after an EventSubnetChanged.
	Subnet netip.Prefix
	// Err is the reason of an EventSubnetConflict.
	Err error
	// Name and Payload are an EventUser's (Payload is the consumer's to keep).
	Name    string
	Payload []byte
}

// eventQueue is the Events channel with a drop-oldest policy: a sender never
// blocks, so a slow consumer cannot stall Serf's event delivery (which would
// stall memberlist's delegates).
type eventQueue struct {
	ch      chan Event
	dropped atomic.Uint64
}

func newEventQueue(n int) *eventQueue { return &eventQueue{ch: make(chan Event, n)} }

// send is called by the cluster's goroutines only.
func (q *eventQueue) send(ev Event) {
	for {
		select {
		case q.ch <- ev:
			return
		default:
		}
		select {
		case <-q.ch:
			q.dropped.Add(1)
		default:
		}
	}
}
