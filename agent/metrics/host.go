package metrics

// The Host check of the metrics and pprof listeners, and the count of what the agent's HTTP
// listeners refuse.
//
// Both listeners answer without authentication, which is safe only while the one who asks is
// this host (or, for /metrics, a scraper the operator pointed at it). A web page in a browser
// on this host can ask too, through DNS rebinding: its own name is made to resolve to
// 127.0.0.1 and the page then reads the answer as same-origin — /debug/pprof/cmdline (the
// agent's command line) or a heap profile. Such a request names the page's domain in Host;
// a client that means this agent names an address or localhost. So a request whose Host is
// anything else is refused (403) and counted.

import (
	"maps"
	"net/http"
	"strconv"
	"sync"

	"github.com/weftnet/weft/agent/internal/httpguard"
)

// HTTPRefusal is one kind of request an HTTP listener of the agent refused.
type HTTPRefusal struct {
	// Listener is "metrics", "pprof", "consul_api" or "ui".
	Listener string
	// Reason names the refusal: "host" (a Host that is neither an address nor localhost),
	// "token" (a Consul API write or a console request without the configured token),
	// "source" (a source address not allowed), "origin", "cross_site", "method" (the
	// console's rules, agent/console/guard.go).
	Reason string
}

// HTTPRefusals counts the requests the agent's HTTP listeners refused, exported as
// weft_http_refused_total{listener,reason}. The zero value is ready; a nil one counts
// nothing. Safe for concurrent use.
type HTTPRefusals struct {
	mu sync.Mutex
	n  map[HTTPRefusal]uint64
}

// Add counts one refusal.
func (c *HTTPRefusals) Add(listener, reason string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[HTTPRefusal]uint64{}
	}
	c.n[HTTPRefusal{listener, reason}]++
}

// Snapshot returns the counts so far.
func (c *HTTPRefusals) Snapshot() map[HTTPRefusal]uint64 {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// AddressOrLocalhost reports whether a Host header names an IP address or localhost: the
// rule of agent/internal/httpguard, shared with the Consul API and the web console.
func AddressOrLocalhost(host string) bool { return httpguard.AddressOrLocalhost(host) }

// hostGuard serves next only to requests whose Host is an address or localhost; others
// get 403 with what to use instead, counted under listener and reason "host".
func hostGuard(listener string, refused *HTTPRefusals, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !AddressOrLocalhost(r.Host) {
			refused.Add(listener, "host")
			http.Error(w, "Forbidden: the "+listener+" listener answers requests addressed to an IP address or localhost "+
				"(Host "+quoteHost(r.Host)+" is refused: a web page could send it through DNS rebinding); "+
				"use http://127.0.0.1:PORT, http://localhost:PORT or the listen address", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quoteHost quotes a Host for an error message, bounded.
func quoteHost(h string) string {
	if len(h) > 64 {
		h = h[:64] + "..."
	}
	return strconv.Quote(h)
}
