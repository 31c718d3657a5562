package catalog

// The mechanics every Consul endpoint shares: errors in Consul's manner (a status and a
// plain-text message), the blocking query and Consul's headers around a read, and the
// authorization and the status code of each error around a write.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

func consulError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// httpError carries a status code out of a handler.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// readFunc answers one read; it runs after the blocking wait.
type readFunc func(r *http.Request) (any, error)

// read wraps a read endpoint with the blocking query and Consul's headers.
func (h *ConsulHandler) read(fn readFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if s := q.Get("index"); s != "" {
			idx, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				consulError(w, http.StatusBadRequest, fmt.Sprintf("Invalid index %q: not a number", s))
				return
			}
			wait := ConsulDefaultWait
			if ws := q.Get("wait"); ws != "" {
				if wait, err = parseConsulWait(ws); err != nil {
					consulError(w, http.StatusBadRequest, err.Error())
					return
				}
			}
			if idx > 0 && idx <= h.cat.Index() {
				select {
				case h.waiters <- struct{}{}:
				default:
					consulError(w, http.StatusTooManyRequests, "too many blocking queries in flight; retry later")
					return
				}
				ctx, cancel := context.WithTimeout(r.Context(), wait)
				_, _ = h.cat.Wait(ctx, idx) // a timeout answers the unchanged state, as Consul does
				cancel()
				<-h.waiters
			}
		}
		idx := h.cat.Index()
		v, err := fn(r)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				consulError(w, he.code, he.msg)
				return
			}
			consulError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
		// Every agent answers from its own gossip view: there is no leader to lose.
		w.Header().Set("X-Consul-KnownLeader", "true")
		w.Header().Set("X-Consul-LastContact", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		if q.Has("pretty") {
			enc.SetIndent("", "    ")
		}
		_ = enc.Encode(v)
	}
}

// parseConsulWait parses ?wait: a Go duration ("30s", "5m") or bare seconds, capped.
func parseConsulWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("Invalid wait time %q: want a duration like 30s", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("Invalid wait time %q: must be positive", s)
	}
	return min(d, ConsulMaxWait), nil
}

// writeFunc performs one write.
type writeFunc func(w http.ResponseWriter, r *http.Request) error

// write wraps a write endpoint: authorization, the body bound, the error mapping.
func (h *ConsulHandler) write(fn writeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if reason, msg := h.writeRefusal(r); reason != "" {
			h.refused(reason)
			consulError(w, http.StatusForbidden, msg)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxConsulBody)
		if err := fn(w, r); err != nil {
			code := http.StatusInternalServerError
			var he *httpError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &he):
				code = he.code
			case errors.As(err, &mbe):
				code = http.StatusRequestEntityTooLarge
			case errors.Is(err, ErrInvalidService), errors.Is(err, ErrInvalidCheck), errors.Is(err, ErrNotTTL):
				code = http.StatusBadRequest
			case errors.Is(err, ErrUnknownService):
				code = http.StatusNotFound
			case errors.Is(err, ErrCatalogFull):
				code = http.StatusInsufficientStorage
			}
			h.log.Debug("consul api: write refused", "path", r.URL.Path, "code", code, "err", err)
			consulError(w, code, err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}
