package config

import (
	"strings"
	"testing"
)

// eth0 is a 1400-byte IPv4 underlay with weft's L3 overhead over IPv4 (tunnel.Overhead).
var eth0 = Underlay{Interface: "eth0", MTU: 1400, Overhead: 68}

func TestResolve_MTUFollowsUnderlay(t *testing.T) {
	cases := []struct {
		name       string
		mode, enc  string
		mtu        int
		u          Underlay
		want       int
		wantSource string
		wantErr    string
	}{
		{name: "follows", mtu: 0, u: eth0, want: 1332, wantSource: "underlay eth0 1400 − 68 (l3, IPv4)"},
		{name: "jumbo", u: Underlay{Interface: "ens5", MTU: 9001, Overhead: 68}, want: 8933, wantSource: "underlay ens5 9001 − 68 (l3, IPv4)"},
		{name: "IPv6 l2", mode: "l2", u: Underlay{Interface: "eth0", MTU: 1500, IPv6: true, Overhead: 102}, want: 1398, wantSource: "underlay eth0 1500 − 102 (l2, IPv6)"},
		{name: "capped", u: Underlay{Interface: "dummy0", MTU: 65536, Overhead: 68}, want: maxMTU, wantSource: "underlay dummy0 65536 − 68 (l3, IPv4), capped at 65455"},
		{name: "none found: l3 assumes 1500 over IPv6", want: 1412, wantSource: "assumed: no underlay found, a 1500-byte IPv6 underlay"},
		{name: "none found: plain l2 as the kernel", mode: "l2", enc: "none", want: 1450, wantSource: "assumed: no underlay found, a 1500-byte IPv4 underlay as the kernel's vxlan"},
		{name: "configured, fits", mtu: 1300, u: eth0, want: 1300, wantSource: "configured (underlay eth0 allows 1332)"},
		{name: "configured, exactly fits", mtu: 1332, u: eth0, want: 1332, wantSource: "configured (underlay eth0 allows 1332)"},
		{name: "configured, no underlay found: accepted", mtu: 9000, want: 9000, wantSource: "configured"},
		{
			name: "configured, too large: refused with the numbers", mtu: 1412, u: eth0, want: 1412,
			wantErr: "mtu 1412 does not fit the underlay: eth0 has MTU 1400, and weft adds 68 bytes in l3 over IPv4, so at most 1332; remove mtu to follow the underlay or set it ≤ 1332",
		},
		{
			name: "underlay too small for any overlay", u: Underlay{Interface: "ppp0", MTU: 600, Overhead: 68}, want: 532,
			wantErr: "the underlay ppp0 has MTU 600, and weft adds 68 bytes in l3 over IPv4: 532 is left for the overlay, below the 576 it needs; raise ppp0's MTU",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := DefaultConfig()
			raw.Name, raw.MTU = "h", tc.mtu
			if tc.mode != "" {
				raw.Mode = tc.mode
			}
			if tc.enc != "" {
				raw.Encryption = tc.enc
			}
			raw.SetUnderlay(tc.u)
			r, err := Resolve(raw)
			if tc.wantErr != "" {
				ps := Problems(err)
				if len(ps) != 1 || ps[0].Key != "mtu" || ps[0].Error() != tc.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.MTU != tc.want || r.MTUSource() != tc.wantSource || r.MTUFollowsUnderlay() != (tc.mtu == 0) {
				t.Errorf("mtu %d source %q follows %v, want %d %q %v", r.MTU, r.MTUSource(), r.MTUFollowsUnderlay(), tc.want, tc.wantSource, tc.mtu == 0)
			}
			if raw.MTU != tc.mtu {
				t.Errorf("raw.MTU changed to %d", raw.MTU)
			}
		})
	}
}

// TestResolve_MTUFollowsAgain: `weft agent` resolves without the underlay (--check aside),
// agent.New resolves the result again with it: the MTU the first step filled in still
// follows, where a configured one is still checked.
func TestResolve_MTUFollowsAgain(t *testing.T) {
	c := DefaultConfig()
	c.Name = "h"
	if err := c.Validate(); err != nil || c.MTU != 1412 {
		t.Fatalf("without underlay: %d %v", c.MTU, err)
	}
	c.SetUnderlay(eth0)
	if err := c.Validate(); err != nil || c.MTU != 1332 || !c.MTUFollowsUnderlay() {
		t.Fatalf("with underlay: %d %v", c.MTU, err)
	}
	c.SetUnderlay(Underlay{Interface: "ens5", MTU: 9001, Overhead: 68})
	if err := c.Validate(); err != nil || c.MTU != 8933 {
		t.Fatalf("underlay changed: %d %v", c.MTU, err)
	}

	conf := DefaultConfig()
	conf.Name, conf.MTU = "h", 1412
	if err := conf.Validate(); err != nil {
		t.Fatal(err)
	}
	conf.SetUnderlay(eth0)
	if err := conf.Validate(); err == nil || !strings.Contains(err.Error(), "at most 1332") {
		t.Fatalf("configured 1412 over a 1400 underlay: %v", err)
	}
}

// TestResolve_MTURefusalNamesLine: the refusal names the line of the file that set mtu.
func TestResolve_MTURefusalNamesLine(t *testing.T) {
	raw := DefaultConfig()
	raw.Name = "h"
	if err := parseConfig([]byte("mode: l3\nmtu: 1500\n"), &raw); err != nil {
		t.Fatal(err)
	}
	raw.SetUnderlay(Underlay{Interface: "eth0", MTU: 1500, IPv6: true, Overhead: 88})
	_, err := Resolve(raw)
	if ps := Problems(err); len(ps) != 1 || ps[0].Line != 2 || !strings.HasPrefix(ps[0].Error(), "line 2: mtu 1500 does not fit the underlay: eth0 has MTU 1500, and weft adds 88 bytes in l3 over IPv6, so at most 1412") {
		t.Fatalf("error = %v", err)
	}
}
