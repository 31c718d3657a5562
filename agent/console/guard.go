package console

// The console's security rules, applied to every request before routing:
//
//   - every answer (errors too) carries a strict Content-Security-Policy, nosniff and
//     no-referrer; /api/* answers are not stored;
//   - read-only: GET and HEAD only (405);
//   - the Host must be an address or localhost (agent/internal/httpguard): a page that
//     rebinds its own name to this host's address is refused (403);
//   - no cross-origin reads: an Origin other than the console's own, or
//     Sec-Fetch-Site: cross-site, is refused (403); no CORS header is ever sent;
//   - with a token (required off loopback): Authorization: Bearer TOKEN, or the cookie
//     /login?token=TOKEN sets (HttpOnly, SameSite=Strict), compared in constant time (401).
//
// Each refusal is counted by reason through Config.Refused.

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/weftnet/weft/agent/internal/httpguard"
)

// CSP is the Content-Security-Policy of every answer: the page's own script and style
// sheet, its own API, nothing inline, no frames.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// cookieName is the session cookie /login sets.
const cookieName = "weft_ui"

// guard applies the rules; false: it answered (refused).
func (s *Server) guard(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.cfg.Refused("method")
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed: the console is read-only (GET and HEAD)", http.StatusMethodNotAllowed)
		return false
	}
	if !httpguard.AddressOrLocalhost(r.Host) {
		s.cfg.Refused("host")
		http.Error(w, "Forbidden: the console answers requests addressed to an IP address or localhost "+
			"(a web page could send another name through DNS rebinding); use http://127.0.0.1:PORT or the listen address", http.StatusForbidden)
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		s.cfg.Refused("cross_site")
		http.Error(w, "Forbidden: cross-site request (open the console directly)", http.StatusForbidden)
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		s.cfg.Refused("origin")
		http.Error(w, "Forbidden: cross-origin request", http.StatusForbidden)
		return false
	}
	if s.cfg.Token == "" || r.URL.Path == "/login" {
		return true
	}
	if s.tokenOK(bearer(r)) || s.tokenOK(cookie(r)) {
		return true
	}
	s.cfg.Refused("token")
	w.Header().Set("WWW-Authenticate", `Bearer realm="weft console"`)
	http.Error(w, "Unauthorized: this console needs the token of ui.token_file: open /login?token=TOKEN once "+
		"(or send Authorization: Bearer TOKEN)", http.StatusUnauthorized)
	return false
}

// sameOrigin: the Origin is the console itself as the request addressed it (the Host was
// checked to be an address or localhost).
func sameOrigin(origin string, r *http.Request) bool {
	return strings.EqualFold(origin, "http://"+r.Host) || strings.EqualFold(origin, "https://"+r.Host)
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func cookie(r *http.Request) string {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// tokenOK compares in constant time (hashes first, so neither the length leaks).
func (s *Server) tokenOK(t string) bool {
	if t == "" || s.cfg.Token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(t)), sha256.Sum256([]byte(s.cfg.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// login sets the session cookie for a right token and sends the browser to the map; the
// Referrer-Policy keeps the token out of any later request's Referer.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token == "" {
		http.Redirect(w, r, "/map", http.StatusFound)
		return
	}
	t := r.URL.Query().Get("token")
	if !s.tokenOK(t) {
		s.cfg.Refused("token")
		http.Error(w, "Unauthorized: wrong or missing token (the content of ui.token_file)", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/map", http.StatusFound)
}
