package clienttag

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/weftnet/weft/discovery/membership"
)

var net24 = netip.MustParsePrefix("10.42.3.0/24")

func addrs(octets ...byte) []netip.Addr {
	var out []netip.Addr
	for _, o := range octets {
		out = append(out, netip.AddrFrom4([4]byte{10, 42, 3, o}))
	}
	return out
}

func TestEncode(t *testing.T) {
	every := func(step int) []netip.Addr {
		var out []netip.Addr
		for o := 1; o <= 254; o += step {
			out = append(out, addrs(byte(o))...)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		want  string
	}{
		{"none", nil, ""},
		{"one", addrs(200), "10.42.3:200"},
		{"runs", addrs(207, 200, 201, 202, 203, 200), "10.42.3:200-203,207"},
		{"network, broadcast and foreign left out", append(addrs(0, 255, 9), netip.MustParseAddr("10.42.4.9")), "10.42.3:9"},
		{"only foreign", []netip.Addr{netip.MustParseAddr("10.42.4.9")}, ""},
		{"scattered: the map", every(2), "10.42.3~"},
		{"all", every(1), "10.42.3:1-254"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(net24, tc.addrs)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(tc.want, "~") && strings.HasPrefix(got, tc.want) && len(got) == len(tc.want)+mapLen {
				// the map form
			} else if got != tc.want {
				t.Fatalf("Encode = %q, want %q", got, tc.want)
			}
			if len(got) > MaxLen {
				t.Fatalf("%d characters, more than MaxLen %d", len(got), MaxLen)
			}
			if got == "" {
				return
			}
			set, err := Decode(got)
			if err != nil {
				t.Fatalf("Decode(%q): %v", got, err)
			}
			if set.Net != net24 {
				t.Fatalf("net %v", set.Net)
			}
			for _, a := range tc.addrs {
				if net24.Contains(a) && a.As4()[3] != 0 && a.As4()[3] != 255 && !slices.Contains(set.Addrs, a) {
					t.Fatalf("%v lost in %q", a, got)
				}
			}
		})
	}
	if _, err := Encode(netip.MustParsePrefix("10.42.0.0/16"), addrs(1)); !errors.Is(err, ErrNetwork) {
		t.Fatalf("a /16: %v", err)
	}
}

func TestDecode_Refuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrSyntax},
		{"10.42.3", ErrSyntax},
		{"10.42.3:", ErrEmpty},
		{"10.42:200", ErrNetwork},
		{"10.42.3.0:200", ErrNetwork},
		{"10.042.3:200", ErrNetwork},
		{"10.42.256:200", ErrNetwork},
		{"10.42.3:0", ErrOctet},
		{"10.42.3:255", ErrOctet},
		{"10.42.3:250-255", ErrOctet},
		{"10.42.3:256", ErrSyntax},
		{"10.42.3:200,200", ErrCanonical},
		{"10.42.3:200,201", ErrCanonical},
		{"10.42.3:201,200", ErrCanonical},
		{"10.42.3:200-200", ErrCanonical},
		{"10.42.3:203-200", ErrCanonical},
		{"10.42.3:200-203,202", ErrCanonical},
		{"10.42.3:+200", ErrSyntax},
		{"10.42.3:200,", ErrSyntax},
		{"10.42.3~AAAA", ErrSyntax},
		{"10.42.3~" + strings.Repeat("A", mapLen), ErrEmpty},
		{"10.42.3~AQ" + strings.Repeat("A", mapLen-2), ErrOctet}, // octet 0
		{"10.42.3~" + strings.Repeat("A", mapLen-1) + "g", ErrCanonical},
		{"10.42.3:" + strings.Repeat("1", MaxLen), ErrTooLong},
	} {
		if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
	// The map form of a set whose runs fit is not its spelling.
	if _, err := Decode("10.42.3~" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"); !errors.Is(err, ErrCanonical) && !errors.Is(err, ErrSyntax) {
		t.Errorf("a map of one address: %v", err)
	}
}

// TestEncode_Budget measures the tag in Serf's metadata: the worst case (a set whose runs
// are longer than the map) costs at most 61 of the 512 bytes all tags share.
func TestEncode_Budget(t *testing.T) {
	var worst []netip.Addr
	for o := 1; o <= 254; o += 2 {
		worst = append(worst, netip.AddrFrom4([4]byte{255, 255, 255, byte(o)}))
	}
	v, err := Encode(netip.MustParsePrefix("255.255.255.0/24"), worst)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != MaxLen {
		t.Fatalf("worst case %d characters, want MaxLen %d", len(v), MaxLen)
	}
	sizeOf := membership.EncodedTagsSize
	base := map[string]string{"n": strings.Repeat("x", 63)}
	full := map[string]string{"n": strings.Repeat("x", 63), Key: v}
	if d := sizeOf(full) - sizeOf(base); d > 61 {
		t.Fatalf("the tag costs %d bytes of Serf metadata, want at most 61", d)
	} else {
		t.Logf("worst-case client tag: %d characters, %d bytes of Serf metadata", len(v), d)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"10.42.3:200", "10.42.3:200-203,207", "10.42.3:1-254", "1.2.3:0", "10.42.3~" + strings.Repeat("A", 42) + "E"} {
		f.Add(s)
	}
	var scattered []netip.Addr
	for o := 1; o <= 254; o += 3 {
		scattered = append(scattered, addrs(byte(o))...)
	}
	if v, err := Encode(net24, scattered); err == nil {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Decode(s)
		if err != nil {
			return
		}
		if len(set.Addrs) == 0 || !set.Net.Addr().Is4() || set.Net.Bits() != 24 {
			t.Fatalf("Decode(%q) accepted %+v", s, set)
		}
		for _, a := range set.Addrs {
			if o := a.As4()[3]; !set.Net.Contains(a) || o == 0 || o == 255 {
				t.Fatalf("Decode(%q) gave %v", s, a)
			}
		}
		again, err := Encode(set.Net, set.Addrs)
		if err != nil || again != s {
			t.Fatalf("Decode(%q) then Encode = %q, %v", s, again, err)
		}
	})
}
