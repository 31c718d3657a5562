package catalog

// Who may call the Consul API: the allowed source addresses; for writes, the configured
// token whenever there is one (compared in constant time), and without one a request over
// loopback that names a local Host.

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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

// writeRefusal says whether a write may proceed: "" when it may, else the reason counted
// (ConsulConfig.Refused) and a message that says what to do.
//
// With a token configured, every write needs it, over loopback too: any local user can
// connect to a loopback listener, and could otherwise register a service of the host on a
// port of their own (receiving part of its traffic) or deregister the host's services.
// Without a token, a write over loopback that names a local Host passes (a single-user
// host's tools work unchanged; the README and the startup log say that any local user may
// then write), and every other is refused.
func (h *ConsulHandler) writeRefusal(r *http.Request) (reason, msg string) {
	if h.cfg.Token != "" {
		if tok := requestToken(r); tok != "" && tokenEqual(tok, h.cfg.Token) {
			return "", ""
		}
		if requestToken(r) != "" {
			return "token", "Permission denied: the token sent is not this agent's Consul API token " +
				"(consul_api.token_file): send that one in the X-Consul-Token header (the official clients read CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)"
		}
		return "token", "Permission denied: writes need this agent's Consul API token (consul_api.token_file), also from this host: " +
			"send it in the X-Consul-Token header (the official clients read CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE; " +
			"or register with `weft register`, which goes through the agent's root-only control socket)"
	}
	if !viaLoopback(r) {
		return "token", "Permission denied: writes are accepted over loopback only " +
			"(set consul_api.token_file to allow writes that carry the token, from other hosts too)"
	}
	if !loopbackHost(r.Host) {
		return "host", "Permission denied: a write over loopback must address the agent as localhost or 127.0.0.1 (Host " +
			strconv.Quote(r.Host) + " is refused: a web page could send it) or carry the token"
	}
	return "", ""
}

// tokenEqual compares tokens in constant time (of their hashes, so the length leaks no
// more than the content).
func tokenEqual(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// refused counts one refused request by reason.
func (h *ConsulHandler) refused(reason string) {
	if h.cfg.Refused != nil {
		h.cfg.Refused(reason)
	}
}

// consulError answers in Consul's manner: a status and a plain-text message.
