package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// UIConfig configures the web console (agent/console): a read-only page of the cluster,
// its links, services and policy, served by every agent.
type UIConfig struct {
	// Listen is the console's TCP address (IP:PORT, or localhost:PORT); empty: off. Any
	// address other than a loopback one needs TokenFile.
	Listen string `yaml:"listen"`
	// TokenFile holds the token every request must then carry (Authorization: Bearer, or
	// the cookie /login?token= sets); mode 0600, at least 16 bytes, as consul_api.token_file.
	TokenFile string `yaml:"token_file"`
}

// DefaultUIListen is ui.listen's default: loopback only, so the console is there for the
// operator on the host (ssh -L) and for nobody else; 9190 is next to Prometheus' 9090 range
// and unassigned. Failing to bind it is a warning, not an error (another agent or program
// may hold it): the agent runs without its console.
const DefaultUIListen = "127.0.0.1:9190"

// UILoopback reports whether ui.listen (a valid one) binds loopback only.
func UILoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// check adds the problems of ui.listen and ui.token_file.
func (u UIConfig) check(p *problems) {
	if u.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(u.Listen)
	if err == nil {
		if n, perr := netip.ParseAddrPort("0.0.0.0:" + port); perr != nil || n.Port() == 0 {
			err = fmt.Errorf("bad port")
		}
	}
	if err == nil && host != "" && !strings.EqualFold(host, "localhost") {
		if _, aerr := netip.ParseAddr(host); aerr != nil {
			err = aerr
		}
	}
	if err != nil {
		p.addf("ui.listen", "ui.listen %q: must be IP:PORT (like %s) or empty to turn the console off", u.Listen, DefaultUIListen)
		return
	}
	if !UILoopback(u.Listen) && u.TokenFile == "" {
		p.addf("ui.listen", "ui.listen %s is not a loopback address: other hosts could read the console, so it needs ui.token_file "+
			"(a file of mode 0600 holding a token of at least 16 bytes, e.g. uuidgen > /etc/weft/ui.token); "+
			"or listen on 127.0.0.1 and use ssh -L", u.Listen)
	}
}
