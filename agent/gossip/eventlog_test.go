package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/discovery/membership"
)

// TestEventLog_StormSummarised: a few member events are logged one by one at Info; a storm
// of a thousand gives the burst, then one summary line with the count per type, and every
// event still reaches Debug.
func TestEventLog_StormSummarised(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newEventLog(log)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	info := func() int { return strings.Count(buf.String(), "level=INFO") }

	for i := range 5 {
		l.member(membership.Event{Type: membership.EventJoin, Member: membership.Member{Name: "h" + string(rune('a'+i))}})
	}
	if got := info(); got != 5 {
		t.Fatalf("%d Info lines for 5 events, want 5", got)
	}
	for i := range 1000 {
		typ := membership.EventJoin
		if i%10 == 0 {
			typ = membership.EventFailed
		}
		l.member(membership.Event{Type: typ, Member: membership.Member{Name: "storm"}}) // the first 15 at Info: 2 failed, 13 join
	}
	if got := info(); got != eventBurst {
		t.Fatalf("%d Info lines after a storm, want the burst of %d", got, eventBurst)
	}
	if got := strings.Count(buf.String(), "level=DEBUG"); got != 1005-eventBurst {
		t.Fatalf("%d Debug lines, want %d", got, 1005-eventBurst)
	}
	l.flush() // the storm is not over: no summary yet
	if got := info(); got != eventBurst {
		t.Fatalf("summary logged while the storm goes on")
	}
	now = now.Add(2 * time.Second)
	l.flush()
	out := buf.String()
	if !strings.Contains(out, "events=985") || !strings.Contains(out, `by_type="failed=98 join=887"`) {
		t.Fatalf("summary missing or wrong:\n%s", out[strings.LastIndex(out, "level=INFO"):])
	}
	l.flush()
	if got := strings.Count(buf.String(), "too many to log"); got != 1 {
		t.Fatalf("%d summaries, want 1", got)
	}
	// Quiet again: the bucket refills, events are logged one by one.
	now = now.Add(time.Minute)
	before := info()
	l.member(membership.Event{Type: membership.EventLeave, Member: membership.Member{Name: "late"}})
	if info() != before+1 {
		t.Fatal("an event after a quiet minute was not logged at Info")
	}
}
