package tunnel

import "testing"

// TestInnerMTU: the overhead table against sizes counted by hand (and the Linux kernel's
// vxlan device, which takes 1450 over a 1500-byte IPv4 underlay).
func TestInnerMTU(t *testing.T) {
	for _, c := range []struct {
		underlay int
		f        Framing
		v6       bool
		want     int
	}{
		{1500, FramingL3, false, 1432}, // 1500 − 20 − 8 − 16 − 8 − 16
		{1500, FramingL3, true, 1412},
		{1460, FramingL3, false, 1392},
		{1400, FramingL3, false, 1332},
		{1280, FramingL3, true, 1192},
		{9001, FramingL3, false, 8933},
		{1500, FramingL2, false, 1418},
		{1500, FramingL2, true, 1398},
		{1500, FramingWireGuard, false, 1440},
		{1500, FramingWireGuard, true, 1420}, // wg-quick's default
		{1500, FramingPlainL2, false, 1450},
		{40, FramingL3, true, 0},
	} {
		if got := InnerMTU(c.underlay, c.f, c.v6); got != c.want {
			t.Errorf("InnerMTU(%d, %d, v6=%v) = %d, want %d", c.underlay, c.f, c.v6, got, c.want)
		}
	}
}
