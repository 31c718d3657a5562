package membership

import "testing"

func TestEventQueue_DropsOldest(t *testing.T) {
	q := newEventQueue(2)
	for i := range 5 {
		q.send(Event{Type: EventUpdate, Member: Member{Name: string(rune('a' + i))}})
	}
	if got := q.dropped.Load(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	for _, want := range []string{"d", "e"} {
		if ev := <-q.ch; ev.Member.Name != want {
			t.Fatalf("got %s, want %s (the newest survive)", ev.Member.Name, want)
		}
	}
}

func TestEventType_String(t *testing.T) {
	for typ, want := range map[EventType]string{EventJoin: "join", EventUpdate: "update", EventLeave: "leave",
		EventFailed: "failed", EventReap: "reap", EventSubnetChanged: "subnet-changed", EventSubnetConflict: "subnet-conflict", 0: "unknown"} {
		if typ.String() != want {
			t.Errorf("%d: %s", typ, typ)
		}
	}
}
