package agent

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

// retryJoin is the loop's progress, shown by `weft status`.
type retryJoin struct {
	mu      sync.Mutex
	state   string // "", "joining", "joined", "gave up"
	attempt int
	lastErr string
	joined  int
	at      time.Time
}

// String is the progress for `weft status`; empty when retry_join is not configured.
func (r *retryJoin) String() string {
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

func (r *retryJoin) set(state string, attempt, joined int, lastErr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state, r.attempt, r.joined, r.lastErr, r.at = state, attempt, joined, lastErr, time.Now()
}

// startRetryJoin starts the loop; the returned func stops it and waits for it.
func (a *Agent) startRetryJoin() (stop func()) {
	cfg := a.cfg.Gossip
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	a.rj.set("joining", 0, 0, "")
	go func() {
		defer wg.Done()
		for attempt := 1; ; attempt++ {
			a.rj.set("joining", attempt, 0, a.rjLastErr())
			addrs := append([]string(nil), cfg.RetryJoin...)
			n, err := a.gsp.join(addrs)
			if n > 0 {
				a.rj.set("joined", attempt, n, "")
				a.log.Info("retry_join: joined", "attempt", attempt, "joined", n)
				return
			}
			msg := "no member answered"
			if err != nil {
				msg = err.Error()
			}
			a.rj.set("joining", attempt, 0, msg)
			if cfg.RetryMax > 0 && attempt >= cfg.RetryMax {
				a.rj.set("gave up", attempt, 0, msg)
				select {
				case a.fatal <- fmt.Errorf("retry_join: gave up after %d attempts (gossip.retry_max): %s", attempt, msg):
				default:
				}
				return
			}
			a.log.Warn("retry_join: no member answered; retrying", "attempt", attempt, "retry_in", cfg.RetryInterval.Duration, "err", msg)
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

func (a *Agent) rjLastErr() string {
	a.rj.mu.Lock()
	defer a.rj.mu.Unlock()
	return a.rj.lastErr
}
