package config

import (
	"strings"
	"testing"
)

func TestConfig_NetstackValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want string // substring of the error; empty: valid
	}{
		{"netstack l3", func(c *Config) { c.Netstack = true }, ""},
		{"l2 refused", func(c *Config) { c.Netstack, c.Mode = true, "l2" }, "l3 datapath only"},
		{"cni refused", func(c *Config) { c.Netstack, c.CNI.Enabled = true, true }, "cni.enabled needs a TUN"},
		{"forward without netstack", func(c *Config) {
			c.Forward = []ForwardConfig{{Listen: "127.0.0.1:5432", To: "db.service.weft:5432"}}
		}, "need netstack"},
		{"open proxy", func(c *Config) { c.Netstack, c.NetstackProxy.SOCKS5 = true, "0.0.0.0:1080" }, "open proxy"},
		{"proxy beyond loopback with auth", func(c *Config) {
			c.Netstack = true
			c.NetstackProxy = NetstackProxyConfig{SOCKS5: "0.0.0.0:1080", Username: "u", PasswordFile: "/p"}
		}, ""},
		{"username without password", func(c *Config) { c.Netstack, c.NetstackProxy.Username = true, "u" }, "both username"},
		{"proxy not an address", func(c *Config) { c.Netstack, c.NetstackProxy.HTTP = true, "localhost:3128" }, "IP:PORT"},
		{"forward bad proto", func(c *Config) {
			c.Netstack = true
			c.Forward = []ForwardConfig{{Listen: "127.0.0.1:1", To: "a.service.weft:1", Proto: "sctp"}}
		}, "tcp or udp"},
		{"forward no port", func(c *Config) {
			c.Netstack = true
			c.Forward = []ForwardConfig{{Listen: "127.0.0.1:1", To: "a.service.weft"}}
		}, "HOST:PORT"},
		{"expose port 0", func(c *Config) {
			c.Netstack, c.Expose = true, []ExposeConfig{{Port: 0, To: "127.0.0.1:1"}}
		}, "1-65535"},
		{"expose twice", func(c *Config) {
			c.Netstack, c.Expose = true, []ExposeConfig{{Port: 80, To: "127.0.0.1:1"}, {Port: 80, To: "127.0.0.1:2", Proto: "tcp"}}
		}, "twice"},
		{"expose to a name", func(c *Config) {
			c.Netstack, c.Expose = true, []ExposeConfig{{Port: 80, To: "localhost:1"}}
		}, "local IP:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfig_NetstackYAML(t *testing.T) {
	c := DefaultConfig()
	err := parseConfig([]byte(`
netstack: true
netstack_proxy: {socks5: 127.0.0.1:1081, http: ""}
forward: [{listen: 127.0.0.1:5432, to: db.service.weft:5432}, {listen: 127.0.0.1:5353, to: dns.service.weft:53, proto: udp}]
expose: [{port: 8080, to: 127.0.0.1:8080}]
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Netstack || c.NetstackProxy.SOCKS5 != "127.0.0.1:1081" || c.NetstackProxy.HTTP != "" ||
		len(c.Forward) != 2 || c.Forward[0].Proto != "tcp" || c.Forward[1].Proto != "udp" || c.Expose[0].Proto != "tcp" {
		t.Fatalf("%+v %+v %+v", c.NetstackProxy, c.Forward, c.Expose)
	}
}

func TestDefaultPaths_ByUser(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		uid         int
		env         map[string]string
		state, sock string
	}{
		{0, map[string]string{"XDG_STATE_HOME": "/x"}, "/var/lib/weft", "/run/weft/weft.sock"},
		{1000, map[string]string{"XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"}, "/s/weft", "/run/user/1000/weft/weft.sock"},
		{1000, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/weft", "/home/u/.local/state/weft/weft.sock"},
		{1000, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "relative", "XDG_RUNTIME_DIR": "rel"}, "/home/u/.local/state/weft", "/home/u/.local/state/weft/weft.sock"},
	} {
		if got := stateDirFor(tc.uid, env(tc.env)); got != tc.state {
			t.Errorf("uid %d %v: state %s, want %s", tc.uid, tc.env, got, tc.state)
		}
		if got := controlSocketFor(tc.uid, env(tc.env)); got != tc.sock {
			t.Errorf("uid %d %v: socket %s, want %s", tc.uid, tc.env, got, tc.sock)
		}
	}
}

func TestParseRelays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ForwardConfig
	}{
		{"127.0.0.1:5432=db.service.weft:5432", ForwardConfig{Listen: "127.0.0.1:5432", To: "db.service.weft:5432"}},
		{"127.0.0.1:53=dns.service.weft:53/udp", ForwardConfig{Listen: "127.0.0.1:53", To: "dns.service.weft:53", Proto: "udp"}},
		{"[::1]:80=[fd00::1]:80/tcp", ForwardConfig{Listen: "[::1]:80", To: "[fd00::1]:80", Proto: "tcp"}},
	} {
		got, err := ParseForward(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseForward(got.String()); err != nil || back.Listen != got.Listen || back.To != got.To {
			t.Errorf("%q does not read back: %+v %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"", "=", "a=", "=b", "a", "a=b/", "a=/udp", "a=b/icmp", "a/b=c", "a=b/c/udp", "a =b"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) accepted", bad)
		}
	}
	if e, err := ParseExpose("8080=127.0.0.1:8080/udp"); err != nil || e != (ExposeConfig{Port: 8080, To: "127.0.0.1:8080", Proto: "udp"}) {
		t.Errorf("ParseExpose: %+v %v", e, err)
	}
	for _, bad := range []string{"0=a:1", "65536=a:1", "-1=a:1", "x=a:1", "80", "080x=a:1"} {
		if _, err := ParseExpose(bad); err == nil {
			t.Errorf("ParseExpose(%q) accepted", bad)
		}
	}
}

// FuzzParseForward: any input is refused or reads back to itself through String.
func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5432=db.service.weft:5432", "a=b/udp", "8080=127.0.0.1:8080", "=/", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fw, err := ParseForward(s); err == nil {
			back, err := ParseForward(fw.String())
			if err != nil || back.Listen != fw.Listen || back.To != fw.To || (back.Proto == "udp") != (fw.Proto == "udp") {
				t.Fatalf("%q -> %+v -> %q -> %+v %v", s, fw, fw.String(), back, err)
			}
		}
		if ex, err := ParseExpose(s); err == nil {
			if ex.Port < 1 || ex.Port > 65535 || ex.To == "" {
				t.Fatalf("%q -> %+v", s, ex)
			}
		}
	})
}
