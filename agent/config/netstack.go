package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// NetstackProxyConfig configures the loopback proxies of netstack mode.
type NetstackProxyConfig struct {
	// SOCKS5 is the SOCKS5 proxy's listen address (CONNECT and UDP ASSOCIATE); empty: off.
	SOCKS5 string `yaml:"socks5"`
	// HTTP is the HTTP proxy's listen address (CONNECT and absolute-URI requests); empty: off.
	HTTP string `yaml:"http"`
	// Username, with PasswordFile, requires authentication on both proxies (SOCKS5: RFC
	// 1929; HTTP: Proxy-Authorization Basic). Required when a proxy listens beyond loopback.
	Username string `yaml:"username"`
	// PasswordFile holds the password (must not be readable by group or others).
	PasswordFile string `yaml:"password_file"`
	// MaxConns bounds each proxy's and each forward's concurrent connections (0: 1024).
	MaxConns int `yaml:"max_conns"`
}

// ForwardConfig is a local port relayed to an overlay destination (netstack mode).
type ForwardConfig struct {
	// Listen is the local address, e.g. 127.0.0.1:5432.
	Listen string `yaml:"listen"`
	// To is the overlay destination: NAME.service.weft:PORT, HOST.node.weft:PORT or an
	// overlay IP:PORT; names are resolved again for every connection (TCP) or session (UDP).
	To string `yaml:"to"`
	// Proto is tcp (default) or udp.
	Proto string `yaml:"proto"`
}

// ExposeConfig is a port of the overlay address relayed to a local address (netstack mode),
// so that a rootless host can serve other hosts.
type ExposeConfig struct {
	// Port on the overlay address.
	Port int `yaml:"port"`
	// To is the local address, e.g. 127.0.0.1:8080.
	To string `yaml:"to"`
	// Proto is tcp (default) or udp.
	Proto string `yaml:"proto"`
}

// checkNetstack adds the problems of the netstack settings (forward, expose and the
// proxies) to p, and gives forward and expose entries their default proto.
func (c *Config) checkNetstack(p *problems) {
	if !c.Netstack {
		if len(c.Forward) > 0 || len(c.Expose) > 0 {
			key := "forward"
			if len(c.Forward) == 0 {
				key = "expose"
			}
			p.add(key, errors.New("forward and expose need netstack: true (with a TUN device the host reaches the overlay directly)"))
		}
		return
	}
	if c.CNI.Enabled {
		p.add("cni.enabled", errors.New("cni.enabled needs a TUN device (containers sit on a bridge the kernel routes into the overlay); not with netstack: true"))
	}
	if c.Mode != "l3" {
		p.add("netstack", errors.New("netstack: true runs the l3 datapath only (a userspace IP stack carries no Ethernet): use mode: l3, or drop netstack for l2"))
	}
	pc := c.NetstackProxy
	if (pc.Username == "") != (pc.PasswordFile == "") {
		key := "netstack_proxy.username"
		if pc.Username == "" {
			key = "netstack_proxy.password_file"
		}
		p.add(key, errors.New("netstack_proxy: set both username and password_file, or neither"))
	}
	for _, l := range []struct{ key, addr string }{{"netstack_proxy.socks5", pc.SOCKS5}, {"netstack_proxy.http", pc.HTTP}} {
		if l.addr == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(l.addr)
		if err != nil {
			p.addf(l.key, "%s %q: must be IP:PORT, like 127.0.0.1:1080", l.key, l.addr)
			continue
		}
		if !ap.Addr().IsLoopback() && pc.Username == "" {
			p.addf(l.key, "%s %s is not loopback: that would be an open proxy into the overlay; listen on 127.0.0.1, or set netstack_proxy.username and password_file", l.key, l.addr)
		}
	}
	if pc.MaxConns < 0 {
		p.addf("netstack_proxy.max_conns", "netstack_proxy.max_conns %d: must be 0 (default) or more", pc.MaxConns)
	}
	for i := range c.Forward {
		f, key := &c.Forward[i], fmt.Sprintf("forward[%d]", i)
		if err := defaultProto(&f.Proto, "forward", i); err != nil {
			p.add(key, err)
		}
		if _, err := netip.ParseAddrPort(f.Listen); err != nil {
			p.addf(key, "forward[%d] listen %q: must be IP:PORT, like 127.0.0.1:5432", i, f.Listen)
		}
		if err := checkHostPort(f.To); err != nil {
			p.addf(key, "forward[%d] to %q: %v (like db.service.weft:5432)", i, f.To, err)
		}
	}
	seen := map[string]bool{}
	for i := range c.Expose {
		e, key := &c.Expose[i], fmt.Sprintf("expose[%d]", i)
		if err := defaultProto(&e.Proto, "expose", i); err != nil {
			p.add(key, err)
		}
		if e.Port < 1 || e.Port > 65535 {
			p.addf(key, "expose[%d] port %d: must be 1-65535", i, e.Port)
		} else if k := e.Proto + strconv.Itoa(e.Port); seen[k] {
			p.addf(key, "expose[%d]: %s port %d is exposed twice", i, e.Proto, e.Port)
		} else {
			seen[k] = true
		}
		if _, err := netip.ParseAddrPort(e.To); err != nil {
			p.addf(key, "expose[%d] to %q: must be a local IP:PORT, like 127.0.0.1:8080", i, e.To)
		}
	}
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return errors.New("must be HOST:PORT")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return errors.New("the port must be 1-65535")
	}
	return nil
}

// Defaults that depend on who runs the agent: root keeps the system paths; another user gets
// their own (XDG base directories), so `weft agent --netstack` runs without privileges and
// the CLI finds its socket without flags.

func defaultStateDir() string { return stateDirFor(os.Geteuid(), os.Getenv) }

func defaultControlSocket() string { return controlSocketFor(os.Geteuid(), os.Getenv) }

// defaultDNSListen: a user cannot bind port 53 on the host; 8600 is Consul's DNS port, a
// habit of the tools weft's catalog speaks with. The overlay port stays 53 (inside the
// netstack, where ports are not privileged).
func defaultDNSListen() []string {
	if os.Geteuid() != 0 {
		return []string{"127.0.0.1:8600", "overlay:53"}
	}
	return []string{"127.0.0.1:53", "overlay:53"}
}

func stateDirFor(uid int, getenv func(string) string) string {
	if uid == 0 {
		return "/var/lib/weft"
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "weft")
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "weft")
	}
	return filepath.Join(os.TempDir(), "weft-"+strconv.Itoa(uid))
}

func controlSocketFor(uid int, getenv func(string) string) string {
	if uid == 0 {
		return "/run/weft/weft.sock"
	}
	if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "weft", "weft.sock")
	}
	return filepath.Join(stateDirFor(uid, getenv), "weft.sock")
}

// defaultProto sets an empty proto of list[i] to tcp and refuses one that is neither tcp
// nor udp.
func defaultProto(proto *string, list string, i int) error {
	if *proto == "" {
		*proto = "tcp"
	}
	if *proto != "tcp" && *proto != "udp" {
		return fmt.Errorf("%s[%d] proto %q: must be tcp or udp", list, i, *proto)
	}
	return nil
}

// ParseForward reads a forward entry in the flag's form LISTEN=TO[/PROTO], e.g.
// "127.0.0.1:5432=db.service.weft:5432" or "127.0.0.1:5353=dns.service.weft:53/udp". It
// checks the form only; Check validates the addresses as for the YAML entries.
func ParseForward(s string) (ForwardConfig, error) {
	listen, to, proto, err := splitRelay(s, "LISTEN=TO[/udp], like 127.0.0.1:5432=db.service.weft:5432")
	return ForwardConfig{Listen: listen, To: to, Proto: proto}, err
}

// ParseExpose reads an expose entry in the flag's form PORT=TO[/PROTO], e.g.
// "8080=127.0.0.1:8080".
func ParseExpose(s string) (ExposeConfig, error) {
	port, to, proto, err := splitRelay(s, "PORT=TO[/udp], like 8080=127.0.0.1:8080")
	if err != nil {
		return ExposeConfig{}, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return ExposeConfig{}, fmt.Errorf("%q: the port must be 1-65535 (want PORT=TO[/udp], like 8080=127.0.0.1:8080)", s)
	}
	return ExposeConfig{Port: int(n), To: to, Proto: proto}, nil
}

// splitRelay splits "FROM=TO[/PROTO]"; PROTO is tcp or udp ("" when absent: tcp).
func splitRelay(s, form string) (from, to, proto string, err error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" || strings.ContainsAny(s, " \t\n\x00") {
		return "", "", "", fmt.Errorf("%q: want %s", s, form)
	}
	if i := strings.LastIndexByte(to, '/'); i >= 0 {
		to, proto = to[:i], to[i+1:]
		if proto != "tcp" && proto != "udp" {
			return "", "", "", fmt.Errorf("%q: protocol %q: tcp or udp (want %s)", s, proto, form)
		}
		if to == "" {
			return "", "", "", fmt.Errorf("%q: want %s", s, form)
		}
	}
	if strings.Contains(from, "/") || strings.Contains(to, "/") {
		return "", "", "", fmt.Errorf("%q: want %s", s, form)
	}
	return from, to, proto, nil
}

// String is the entry in the flag's form.
func (f ForwardConfig) String() string { return relayString(f.Listen, f.To, f.Proto) }

// String is the entry in the flag's form.
func (e ExposeConfig) String() string { return relayString(strconv.Itoa(e.Port), e.To, e.Proto) }

func relayString(from, to, proto string) string {
	s := from + "=" + to
	if proto != "" && proto != "tcp" {
		s += "/" + proto
	}
	return s
}
