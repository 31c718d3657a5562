// Package httpguard holds the access rules the agent's HTTP listeners share (metrics, pprof,
// the Consul API, the web console): the Host rule that defeats DNS rebinding, and the
// reading of a token file. One copy of each, so a fix reaches every listener.
package httpguard

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// AddressOrLocalhost reports whether a Host header names an IP address (any, with or
// without a port; an IPv6 one in brackets) or localhost: names no web page can be served
// from by a DNS rebinding. A trailing dot and the case are ignored.
//
// A page in a browser on this host can make its own name resolve to 127.0.0.1 and then
// read a loopback listener's answers as same-origin; such a request names the page's domain
// in Host, while a client that means this agent names an address or localhost.
func AddressOrLocalhost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	// A zone ("fe80::1%eth0") names an interface of the client's host, never this
	// listener: refused, so the rule is "a plain address or localhost".
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == ""
}

// MinTokenLen is the shortest token a token file may hold.
const MinTokenLen = 16

// ReadTokenFile reads the token of setting key (e.g. "consul_api.token_file") from path: a
// file that only its owner may read (no group or other permission bits), holding at least
// MinTokenLen bytes once surrounding white space is trimmed. Errors name the setting and
// say what to do.
func ReadTokenFile(key, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s %s is readable by group or others (mode %o): run chmod 600 %s", key, path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("%s %s: the token is %d bytes, want at least %d (e.g. uuidgen > %s)", key, path, len(tok), MinTokenLen, path)
	}
	return tok, nil
}
