package peers

import (
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
)

// The no-reply timer's state: armed by the first data sent, kept by later sends, cleared by
// any authenticated receive (data, keepalive, handshake), claimed once.
func TestPeer_Unanswered(t *testing.T) {
	p, _ := newTestTable(t).Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}})
	p.AddTx(1, 0, false, 10) // a keepalive
	if got := p.Unanswered(); got != 0 {
		t.Fatalf("a keepalive armed it at %d", got)
	}
	p.AddTx(3, 300, true, 20)
	p.AddTx(1, 100, true, 30)
	if got := p.Unanswered(); got != 20 {
		t.Fatalf("armed at %d, want the first data at 20", got)
	}
	p.AddRx(1, 0, false, 40) // a keepalive received is an answer too
	if got := p.Unanswered(); got != 0 {
		t.Fatalf("still armed at %d after a receive", got)
	}
	p.AddTx(1, 100, true, 50)
	p.HandshakeDone(time.Unix(0, 60))
	if got := p.Unanswered(); got != 0 {
		t.Fatalf("still armed at %d after a handshake", got)
	}
	p.AddTx(1, 100, true, 70)
	if p.ClaimUnanswered(50) || p.ClaimUnanswered(0) {
		t.Fatal("claimed with a stale or zero arming time")
	}
	if !p.ClaimUnanswered(70) || p.ClaimUnanswered(70) {
		t.Fatal("want exactly one claim")
	}
	if got := p.Unanswered(); got != 0 {
		t.Fatalf("armed at %d after the claim", got)
	}
	p.AddTx(1, 100, true, 80)
	if got := p.Unanswered(); got != 80 {
		t.Fatalf("new data re-armed it at %d, want 80", got)
	}
	if n := p.Stats().NoReplyHandshakes; n != 1 {
		t.Fatalf("NoReplyHandshakes %d, want 1", n)
	}
}

// Sends, receives and claims race (the two loops and the timer): no data race (-race), and
// every successful claim, and only those, is counted.
func TestPeer_UnansweredConcurrent(t *testing.T) {
	p, _ := newTestTable(t).Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Each loop counts one packet at a time, its clock ticking from 1, until stop.
	for _, add := range []func(packets, bytes uint64, data bool, now int64){p.AddTx, p.AddRx} {
		wg.Go(func() {
			for ts := int64(1); ; ts++ {
				select {
				case <-stop:
					return
				default:
					add(1, 1, true, ts)
				}
			}
		})
	}
	claims := 0
	for range 10000 {
		if since := p.Unanswered(); since != 0 && p.ClaimUnanswered(since) {
			claims++
		}
	}
	close(stop)
	wg.Wait()
	if n := p.Stats().NoReplyHandshakes; n != uint64(claims) {
		t.Fatalf("counted %d, claimed %d", n, claims)
	}
	// After the storm the state still works: whatever it was left in, a receive clears it,
	// data sent then arms it with that send's time, and a stale claim (of another time)
	// does not disarm it.
	p.AddRx(1, 1, true, 1<<40)
	if p.Unanswered() != 0 {
		t.Fatal("a receive left the timer armed")
	}
	p.AddTx(1, 1, true, 1<<41)
	if got := p.Unanswered(); got != 1<<41 {
		t.Fatalf("armed at %d, want %d", got, int64(1<<41))
	}
	if p.ClaimUnanswered(1<<40) || p.Unanswered() != 1<<41 {
		t.Fatal("a claim of an older arming disarmed the newer one")
	}
}

func TestPeer_AddTxRxNoAlloc(t *testing.T) {
	p, _ := newTestTable(t).Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}})
	ts := int64(1)
	if n := testing.AllocsPerRun(100, func() {
		ts++
		p.AddTx(64, 64*1420, true, ts)
		p.AddRx(64, 64*1420, true, ts)
	}); n != 0 {
		t.Fatalf("AddTx+AddRx allocate %v times", n)
	}
}
