package catalog

// Who may call the Consul API: the allowed source addresses, and for writes a request
// over loopback that names a local Host, or one with the configured token (compared in
// constant time).

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// viaLoopback reports whether the request came over a loopback connection (from this host).
func viaLoopback(r *http.Request) bool {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if la == nil {
		return false
	}
	lap, err := netip.ParseAddrPort(la.String())
	return err == nil && lap.Addr().Unmap().IsLoopback() && remoteAddr(r).IsLoopback()
}

func (h *ConsulHandler) sourceAllowed(r *http.Request) bool {
	if h.cfg.AllowedSources == nil {
		return true
	}
	return loopbackOrIn(remoteAddr(r), h.cfg.AllowedSources)
}

// loopbackOrIn reports whether a (unmapped) is a loopback address or lies in one of
// prefixes: who may call the Consul API (AllowedSources) and have DNS queries forwarded
// (ForwardFrom).
func loopbackOrIn(a netip.Addr, prefixes []netip.Prefix) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestToken is the token a request carries, from the header, a bearer or ?token=.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

// loopbackHost reports whether a request's Host names this host as a local client does:
// localhost or a loopback address (any port). A web page that made a browser send the
// request through DNS rebinding names its own domain there.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authorized: a write over loopback that names localhost or a loopback address as its Host,
// or one with the configured token (compared in constant time).
func (h *ConsulHandler) authorized(r *http.Request) bool {
	if viaLoopback(r) && loopbackHost(r.Host) {
		return true
	}
	if h.cfg.Token == "" {
		return false
	}
	got := sha256.Sum256([]byte(requestToken(r)))
	want := sha256.Sum256([]byte(h.cfg.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// consulError answers in Consul's manner: a status and a plain-text message.
