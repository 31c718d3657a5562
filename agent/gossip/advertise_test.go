package gossip

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeHost is a host's routes and addresses for detectAdvertise.
type fakeHost struct {
	routes map[int]struct {
		src  string
		link int
	}
	links map[int][]string // link → addresses (both families)
	up    []int            // links that are up, in order
}

func (f fakeHost) defaultRoute(family int) (netip.Addr, int, bool) {
	r, ok := f.routes[family]
	if !ok {
		return netip.Addr{}, 0, false
	}
	var src netip.Addr
	if r.src != "" {
		src = netip.MustParseAddr(r.src)
	}
	return src, r.link, true
}

func (f fakeHost) addrs(link, family int) []netip.Addr {
	links := f.up
	if link > 0 {
		links = []int{link}
	}
	var out []netip.Addr
	for _, l := range links {
		for _, s := range f.links[l] {
			a := netip.MustParseAddr(s)
			if a.Is4() == (family == unix.AF_INET) {
				out = append(out, a)
			}
		}
	}
	return out
}

type route = struct {
	src  string
	link int
}

func TestDetectAdvertise(t *testing.T) {
	cases := []struct {
		name string
		host fakeHost
		want string
		err  error
	}{
		{"route source wins", fakeHost{routes: map[int]route{unix.AF_INET: {"203.0.113.7", 2}},
			links: map[int][]string{2: {"203.0.113.9"}}}, "203.0.113.7", nil},
		{"TEST-NET only, default route's interface", fakeHost{routes: map[int]route{unix.AF_INET: {"", 2}},
			links: map[int][]string{1: {"10.0.0.1"}, 2: {"fe80::1", "192.0.2.10"}}, up: []int{1, 2}}, "192.0.2.10", nil},
		{"IPv4 before IPv6", fakeHost{routes: map[int]route{unix.AF_INET: {"", 3}, unix.AF_INET6: {"", 2}},
			links: map[int][]string{2: {"2001:db8::1"}, 3: {"198.51.100.1"}}}, "198.51.100.1", nil},
		{"IPv6 only", fakeHost{routes: map[int]route{unix.AF_INET6: {"", 2}},
			links: map[int][]string{2: {"fe80::2", "2001:db8::5"}}}, "2001:db8::5", nil},
		{"IPv4 route without a usable address falls to IPv6", fakeHost{routes: map[int]route{unix.AF_INET: {"", 2}, unix.AF_INET6: {"", 2}},
			links: map[int][]string{2: {"169.254.1.1", "2001:db8::9"}}}, "2001:db8::9", nil},
		{"no default route: first global address", fakeHost{links: map[int][]string{4: {"fe80::1", "2001:db8::4"}, 5: {"192.0.2.3"}}, up: []int{4, 5}}, "192.0.2.3", nil},
		{"nothing usable", fakeHost{links: map[int][]string{1: {"127.0.0.1", "::1", "fe80::1"}}, up: []int{1}}, "", errNoAdvertise},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := detectAdvertise(tc.host)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.want != "" && got.addr != netip.MustParseAddr(tc.want) {
				t.Fatalf("addr = %v (%s), want %s", got.addr, got.why, tc.want)
			}
		})
	}
}

func TestChooseAdvertise_ExplicitAndBind(t *testing.T) {
	if c, err := chooseAdvertise("0.0.0.0", "192.0.2.44"); err != nil || c.addr != netip.MustParseAddr("192.0.2.44") || c.why != "gossip.advertise" {
		t.Fatalf("explicit advertise: %+v %v", c, err)
	}
	if c, err := chooseAdvertise("127.0.0.3", ""); err != nil || c.addr != netip.MustParseAddr("127.0.0.3") || c.why != "gossip.bind" {
		t.Fatalf("bind address: %+v %v", c, err)
	}
	if _, err := chooseAdvertise("", "not an address..invalid"); err == nil {
		t.Fatal("an advertise address that neither parses nor resolves was accepted")
	}
}
