package peers

import (
	"sync"
	"testing"
	"time"
)

// sentAttempt returns a session whose first attempt (index 7) began and was sent at t0.
func sentAttempt(t *testing.T) (s *Session, t0 time.Time) {
	t.Helper()
	s, t0 = new(Session), time.Unix(1000, 0)
	if _, ok := s.BeginAttempt(t0, false, 5*time.Second); !ok {
		t.Fatal("first attempt refused")
	}
	s.AttemptSent(t0, 7)
	return s, t0
}

func TestSession_Attempt(t *testing.T) {
	s, t0 := sentAttempt(t)
	if !s.InFlight() {
		t.Fatal("not in flight after AttemptSent")
	}
	if _, ok := s.BeginAttempt(t0.Add(time.Second), false, 5*time.Second); ok {
		t.Fatal("a second initiation within RekeyTimeout was allowed")
	}
	old, ok := s.BeginAttempt(t0.Add(time.Second), true, 5*time.Second)
	if !ok || old != 7 {
		t.Fatalf("retransmit: old index %d, ok %v; want 7, true", old, ok)
	}
	s.AttemptSent(t0.Add(time.Second), 8)
	s.CompleteAttempt(8)
	if s.InFlight() {
		t.Fatal("in flight after CompleteAttempt")
	}
	if idx := s.AbandonAttempt(); idx != 0 {
		t.Fatalf("completed attempt kept index %d", idx)
	}
}

// TestSession_TickGivesUp: the attempt's clock runs from its first initiation, not the last
// retransmit, and giving up hands back the index and every queued packet in order.
func TestSession_TickGivesUp(t *testing.T) {
	var s Session
	t0 := time.Unix(1000, 0)
	s.BeginAttempt(t0, false, time.Second)
	s.AttemptSent(t0, 3)
	s.BeginAttempt(t0.Add(4*time.Second), true, time.Second) // retransmit: started stays t0
	s.AttemptSent(t0.Add(4*time.Second), 4)
	for i := range 3 {
		s.Enqueue([]byte{byte(i)}, 2) // capacity 2: the first is evicted
	}
	s.RetrySoon(t0)
	v, dropped := s.Tick(t0.Add(4*time.Second), 5*time.Second, nil)
	if v.GaveUp || !v.Retry || v.Pending != 2 || !v.LastInitiation.Equal(t0) {
		t.Fatalf("early tick %+v", v)
	}
	if v, _ := s.Tick(t0.Add(4*time.Second), 5*time.Second, nil); v.Retry {
		t.Fatal("Retry read twice")
	}
	v, dropped = s.Tick(t0.Add(5*time.Second), 5*time.Second, dropped)
	if !v.GaveUp || v.FreeIndex != 4 || len(dropped) != 2 || dropped[0][0] != 1 || dropped[1][0] != 2 {
		t.Fatalf("give-up tick %+v, dropped %v", v, dropped)
	}
	if s.InFlight() || s.PendingLen() != 0 {
		t.Fatal("attempt or queue survived the give-up")
	}
}

// TestSession_ConcurrentQueue: the send loop queues while the worker drains (run with -race);
// nothing is lost or seen twice.
func TestSession_ConcurrentQueue(t *testing.T) {
	var s Session
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	evicted := 0
	go func() {
		defer wg.Done()
		for i := range n {
			if _, ev := s.Enqueue([]byte{byte(i)}, 4); ev {
				evicted++
			}
		}
	}()
	got := 0
	var buf [][]byte
	for range n {
		buf = s.Drain(buf[:0])
		got += len(buf)
	}
	wg.Wait()
	got += len(s.Drain(nil))
	if got+evicted != n {
		t.Fatalf("drained %d + evicted %d != %d queued", got, evicted, n)
	}
}

func TestSession_MarkRequested(t *testing.T) {
	var s Session
	if !s.MarkRequested() || s.MarkRequested() {
		t.Fatal("MarkRequested must succeed once until cleared")
	}
	s.ClearRequested()
	if !s.MarkRequested() {
		t.Fatal("MarkRequested after ClearRequested failed")
	}
}

func TestSession_View(t *testing.T) {
	s, t0 := sentAttempt(t)
	s.CookieReceived()
	if _, ok := s.BeginAttempt(t0.Add(5*time.Second), true, 5*time.Second); !ok {
		t.Fatal("retransmit refused")
	}
	s.AttemptSent(t0.Add(5*time.Second), 8)
	v := s.View()
	if !v.InFlight || v.Sent != 2 || !v.Started.Equal(t0) || !v.Cookie || v.GaveUp != 0 {
		t.Fatalf("view during the attempt: %+v", v)
	}
	s.Tick(t0.Add(100*time.Second), 90*time.Second, nil)
	v = s.View()
	if v.InFlight || v.GaveUp != 1 || !v.LastGaveUp.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("view after giving up: %+v", v)
	}
	// A new attempt starts its own count and forgets the cookie.
	s.BeginAttempt(t0.Add(200*time.Second), false, 5*time.Second)
	s.AttemptSent(t0.Add(200*time.Second), 9)
	if v = s.View(); v.Sent != 1 || v.Cookie || v.GaveUp != 1 {
		t.Fatalf("view of a new attempt: %+v", v)
	}
}
