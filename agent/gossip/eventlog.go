package gossip

import (
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/discovery/membership"
)

// eventLog logs member events at Info one by one while they are few: a burst of eventBurst,
// then one per eventEvery. Beyond that (a join storm, a flapping rack) each event goes to
// Debug and Info gets one summary line per type when the burst is over (flush, from the
// event loop's tick), so a 1,000-host join costs a few lines, not a thousand.
type eventLog struct {
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed map[string]int // event type → events logged at Debug only since the last summary
	since      time.Time
}

const (
	eventBurst = 20
	eventEvery = time.Second
)

func newEventLog(log *slog.Logger) *eventLog {
	return &eventLog{log: log, now: time.Now, tokens: eventBurst, suppressed: map[string]int{}}
}

// member logs one member event.
func (l *eventLog) member(ev membership.Event) {
	msg := "member " + ev.Type.String()
	attrs := []any{"member", ev.Member.Name, "addr", ev.Member.Addr, "subnet", ev.Member.Info.Subnet}
	if l.take(ev.Type.String()) {
		l.log.Info(msg, attrs...)
		return
	}
	l.log.Debug(msg, attrs...)
}

// take reports whether an event may be logged at Info now; if not, it is counted.
func (l *eventLog) take(kind string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(eventBurst, l.tokens+now.Sub(l.last).Seconds()/eventEvery.Seconds())
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	if len(l.suppressed) == 0 {
		l.since = now
	}
	l.suppressed[kind]++
	return false
}

// flush logs the summary of the events not logged at Info, once the burst is over (the
// bucket has refilled a little): "member events not logged one by one" with a count per type.
func (l *eventLog) flush() {
	l.mu.Lock()
	if len(l.suppressed) == 0 || l.now().Sub(l.last) < eventEvery {
		l.mu.Unlock()
		return
	}
	counts, since := l.suppressed, l.since
	l.suppressed = map[string]int{}
	l.mu.Unlock()
	var parts []string
	total := 0
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, k+"="+strconv.Itoa(counts[k]))
		total += counts[k]
	}
	l.log.Info("member events logged at debug level only (too many to log one by one)",
		"events", total, "by_type", strings.Join(parts, " "), "since", since.Format(time.RFC3339))
}
