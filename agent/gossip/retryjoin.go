package gossip

import (
	"fmt"
	"sync"
	"time"
)

// retry_join, with Consul's semantics: the agent starts (device, API, DNS) without waiting,
// and a background loop tries every address of gossip.retry_join, then waits
// gossip.retry_interval and tries again, until at least one member answers. Then it stops
// for good: from there Serf itself keeps the membership (and reconnects failed members).
// With gossip.retry_max > 0 the agent gives up after that many attempts and exits with an
// error, so that a supervisor notices (Consul does the same).

// RetryJoin is the loop's progress, shown by `weft status`; the zero value is ready to use.
type RetryJoin struct {
	mu      sync.Mutex
	state   string // "", "joining", "joined", "gave up"
	attempt int
	lastErr string
	joined  int
	at      time.Time
}

// String is the progress for `weft status`; empty when retry_join is not configured.
func (r *RetryJoin) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case "joining":
		s := fmt.Sprintf("joining: attempt %d", r.attempt)
		if r.lastErr != "" {
			s += ", last error: " + r.lastErr
		}
		return s
	case "joined":
		return fmt.Sprintf("joined %d member(s) at attempt %d, %s", r.joined, r.attempt, r.at.Format(time.RFC3339))
	case "gave up":
		return fmt.Sprintf("gave up after %d attempts: %s", r.attempt, r.lastErr)
	}
	return ""
}

func (r *RetryJoin) set(state string, attempt, joined int, lastErr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state, r.attempt, r.joined, r.lastErr, r.at = state, attempt, joined, lastErr, time.Now()
}

// StartRetryJoin starts the retry_join loop over gossip.retry_join, its progress kept in r;
// fatal is called once when it gives up (gossip.retry_max). The returned func stops it and
// waits for it.
func (g *Gossip) StartRetryJoin(r *RetryJoin, fatal func(error)) (stop func()) {
	cfg := g.cfg.Gossip
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	r.set("joining", 0, 0, "")
	go func() {
		defer wg.Done()
		for attempt := 1; ; attempt++ {
			r.set("joining", attempt, 0, r.lastError())
			addrs := append([]string(nil), cfg.RetryJoin...)
			n, err := g.Join(addrs)
			if n > 0 {
				r.set("joined", attempt, n, "")
				g.log.Info("retry_join: joined", "attempt", attempt, "joined", n)
				return
			}
			msg := "no member answered"
			if err != nil {
				msg = err.Error()
			}
			r.set("joining", attempt, 0, msg)
			if cfg.RetryMax > 0 && attempt >= cfg.RetryMax {
				r.set("gave up", attempt, 0, msg)
				fatal(fmt.Errorf("retry_join: gave up after %d attempts (gossip.retry_max): %s", attempt, msg))
				return
			}
			g.log.Warn("retry_join: no member answered; retrying", "attempt", attempt, "retry_in", cfg.RetryInterval.Duration, "err", msg)
			select {
			case <-done:
				return
			case <-time.After(cfg.RetryInterval.Duration):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

func (r *RetryJoin) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}
