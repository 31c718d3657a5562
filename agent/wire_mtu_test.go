package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/underlay"
)

// fakeRoutes answers every route and local lookup with link (none when link.MTU is 0) and
// records what was asked.
type fakeRoutes struct {
	link  underlay.Link
	asked []string
}

func (f *fakeRoutes) lookup() underlay.Lookup {
	answer := func(kind string) func(netip.Addr) (underlay.Link, error) {
		return func(a netip.Addr) (underlay.Link, error) {
			f.asked = append(f.asked, kind+" "+a.String())
			if f.link.MTU == 0 {
				return underlay.Link{}, errors.New("network unreachable")
			}
			k := f.link
			k.IPv6 = a.Is6()
			return k, nil
		}
	}
	return underlay.Lookup{Route: answer("route"), Local: answer("local"),
		Defaults: func() ([]underlay.Link, error) { f.asked = append(f.asked, "defaults"); return nil, nil }}
}

// TestFollowUnderlay_Targets: the static peers' endpoints and the gossip join addresses
// (IP literals only: no name is resolved) are asked; bind/advertise only when none answers.
func TestFollowUnderlay_Targets(t *testing.T) {
	c := config.DefaultConfig()
	c.Peers = []config.PeerConfig{{Endpoint: config.AddrPort{AddrPort: netip.MustParseAddrPort("192.0.2.7:51820")}}, {}}
	c.Gossip.Join = []string{"198.51.100.1:7946", "seed.example.com:7946", "[2001:db8::1]:7946"}
	c.Gossip.RetryJoin = []string{"203.0.113.9"}
	c.Gossip.Bind, c.Gossip.Advertise = "10.0.0.1:7946", "0.0.0.0"
	f := &fakeRoutes{}
	followUnderlay(&c, f.lookup())
	want := []string{"route 192.0.2.7", "route 198.51.100.1", "route 2001:db8::1", "route 203.0.113.9", "local 10.0.0.1", "defaults"}
	if !reflect.DeepEqual(f.asked, want) {
		t.Errorf("asked %v\nwant  %v", f.asked, want)
	}
	if c.Underlay().Found() {
		t.Errorf("underlay %+v found in an empty table", c.Underlay())
	}
	c.Gossip.Disabled = true // the gossip addresses are not the data port's then
	f = &fakeRoutes{}
	followUnderlay(&c, f.lookup())
	if want := []string{"route 192.0.2.7", "defaults"}; !reflect.DeepEqual(f.asked, want) {
		t.Errorf("gossip disabled: asked %v, want %v", f.asked, want)
	}
}

// TestFollowUnderlay_Framing: the overhead is tunnel.Overhead of the mode's framing over
// the family of the route found.
func TestFollowUnderlay_Framing(t *testing.T) {
	cases := []struct {
		mode, enc string
		peer      string
		want      int
	}{
		{"l3", "wireguard", "192.0.2.7", 1432},
		{"l3", "wireguard", "2001:db8::7", 1412},
		{"l2", "wireguard", "192.0.2.7", 1418},
		{"l2", "wireguard", "2001:db8::7", 1398},
		{"l2", "none", "192.0.2.7", 1450},
		{"l2", "none", "2001:db8::7", 1430},
	}
	for _, tc := range cases {
		c := config.DefaultConfig()
		c.Name, c.Mode, c.Encryption = "h", tc.mode, tc.enc
		c.Gossip.Disabled, c.Subnet = true, config.Prefix{Prefix: netip.MustParsePrefix("10.42.1.0/24")}
		c.Peers = []config.PeerConfig{{PublicKey: "k", Endpoint: config.AddrPort{AddrPort: netip.AddrPortFrom(netip.MustParseAddr(tc.peer), 4789)}}}
		f := &fakeRoutes{link: underlay.Link{Interface: "eth0", MTU: 1500}}
		followUnderlay(&c, f.lookup())
		r, _ := config.Resolve(c) // the fake peer key is refused; the mtu is resolved all the same
		if r.MTU != tc.want {
			t.Errorf("%s %s over %s: mtu %d (%s), want %d", tc.mode, tc.enc, tc.peer, r.MTU, r.MTUSource(), tc.want)
		}
	}
}

// newWithUnderlay runs New over a fake routing table whose peer route leads to link.
func newWithUnderlay(t *testing.T, mtu int, link underlay.Link, log *slog.Logger) (*Agent, error) {
	t.Helper()
	saved := newUnderlayLookup
	t.Cleanup(func() { newUnderlayLookup = saved })
	f := &fakeRoutes{link: link}
	newUnderlayLookup = f.lookup
	dir := t.TempDir()
	c := config.DefaultConfig()
	c.Name, c.StateDir, c.MTU, c.Trust = "h", dir, mtu, config.TrustSharedKey
	c.ControlSocket = filepath.Join(dir, "weft.sock")
	c.Gossip.Disabled, c.Subnet = true, config.Prefix{Prefix: netip.MustParsePrefix("10.42.1.0/24")}
	c.CNI.Enabled = true
	c.Peers = []config.PeerConfig{{PublicKey: mustKey(t).Public().String(), Endpoint: config.AddrPort{AddrPort: netip.MustParseAddrPort("192.0.2.7:51820")},
		AllowedIPs: []config.Prefix{{Prefix: netip.MustParsePrefix("10.42.2.0/24")}}}}
	return New(c, log)
}

// TestNew_MTUFollowsUnderlay: the agent runs with the underlay's MTU less the overhead, says
// so in its status and its log, and hands it to the containers (CNI, subnet.env); a
// configured mtu too large for the underlay is refused with the numbers.
func TestNew_MTUFollowsUnderlay(t *testing.T) {
	var logs bytes.Buffer
	a, err := newWithUnderlay(t, 0, underlay.Link{Interface: "eth0", MTU: 1460}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.MTU != 1392 || a.cfg.MTUSource() != "underlay eth0 1460 − 68 (l3, IPv4)" {
		t.Errorf("mtu %d source %q", a.cfg.MTU, a.cfg.MTUSource())
	}
	if got := a.ctr.Subnet().MTU; got != 1392 {
		t.Errorf("containers' MTU %d, want 1392", got)
	}
	if !strings.Contains(logs.String(), `msg="overlay mtu" mtu=1392 underlay_if=eth0 underlay_mtu=1460 family=IPv4 overhead=68`) {
		t.Errorf("log: %s", logs.String())
	}

	_, err = newWithUnderlay(t, 1412, underlay.Link{Interface: "eth0", MTU: 1400}, nil)
	want := "mtu 1412 does not fit the underlay: eth0 has MTU 1400, and weft adds 68 bytes in l3 over IPv4, so at most 1332; remove mtu to follow the underlay or set it ≤ 1332"
	if err == nil || err.Error() != want {
		t.Errorf("configured 1412 over 1400: %v\nwant %s", err, want)
	}

	logs.Reset()
	a, err = newWithUnderlay(t, 0, underlay.Link{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.MTU != 1412 || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "assuming a 1500-byte IPv6 underlay") {
		t.Errorf("no underlay: mtu %d, log %s", a.cfg.MTU, logs.String())
	}
	a, err = newWithUnderlay(t, 9000, underlay.Link{}, nil)
	if err != nil || a.cfg.MTU != 9000 {
		t.Errorf("configured 9000 with no underlay found: %v", err)
	}
}
