package console

// The event stream (/api/events, text/event-stream). Each open stream is a client of the
// hub with a small queue; the sampler (sampler.go) publishes "cluster" every interval and
// "policy" when it changed, the catalog watch below "services" when the catalog changed.
// A client too slow to take its queue loses events (the next "cluster" supersedes the
// last). At most MaxClients streams are open; Close ends them all.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

type client struct{ ch chan []byte }

type hub struct {
	max    int
	mu     sync.Mutex
	subs   map[*client]struct{}
	closed bool
	done   chan struct{}
}

func newHub(max int) *hub {
	return &hub{max: max, subs: map[*client]struct{}{}, done: make(chan struct{})}
}

// join adds a client; nil when MaxClients are open or the hub is closed.
func (h *hub) join() *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) >= h.max {
		return nil
	}
	c := &client{ch: make(chan []byte, 16)}
	h.subs[c] = struct{}{}
	return c
}

func (h *hub) leave(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, c)
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// publish sends v as JSON under event name to every client.
func (h *hub) publish(name string, v any) { h.publishRaw(name, mustJSON(v)) }

func (h *hub) publishRaw(name string, data []byte) {
	msg := frame(name, data)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c.ch <- msg:
		default: // slow client: this event is lost, a later one follows
		}
	}
}

// frame is one server-sent event; data is JSON, one line.
func frame(name string, data []byte) []byte {
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, data)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// events serves one stream: the current state at once, then what the hub publishes.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c := s.hub.join()
	if c == nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("too many console streams open (%d): close a tab", s.cfg.MaxClients), http.StatusServiceUnavailable)
		return
	}
	defer s.hub.leave(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// retry: the browser reconnects after 2 s when the agent restarts.
	first := [][]byte{[]byte("retry: 2000\n\n"), frame("cluster", mustJSON(s.samp.latest())), frame("services", mustJSON(s.services()))}
	if p, err := s.policy(); err == nil {
		first = append(first, frame("policy", mustJSON(p)))
	}
	for _, b := range first {
		if _, err := w.Write(b); err != nil {
			return
		}
	}
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-s.hub.done:
			return
		case b := <-c.ch:
			if _, err := w.Write(b); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// watchLoop waits on the catalog (a blocking query) and publishes "services" on each
// change, at most every 250 ms so a flapping check does not flood the streams.
func (s *Server) watchLoop() {
	defer s.wg.Done()
	cat := s.src.Catalog
	if cat == nil {
		return
	}
	idx := cat.Index()
	for {
		next, err := cat.Wait(s.ctx, idx)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil { // the catalog closed (the agent stops)
			return
		}
		idx = next
		if s.hub.count() > 0 {
			s.hub.publish("services", s.services())
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}
