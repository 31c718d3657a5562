package config

import "fmt"

// The overlay MTU follows the underlay (ARCHITECTURE.md, "MTU"). This package queries
// nothing: the agent root finds the link that carries the data port's traffic in the
// host's routing table (agent/wire_mtu.go) and hands it over with SetUnderlay before
// resolving. Resolve then sets an unconfigured mtu to what that underlay carries, and
// refuses a configured one larger than that. An mtu that followed the underlay is marked,
// so that a second Resolve (agent.New validates again what `weft agent` resolved) follows
// it again instead of taking it for a configured value.

// Underlay is the link that carries the data port's traffic, as the agent found it.
type Underlay struct {
	// Interface is the device's name (eth0).
	Interface string
	// MTU is the route's MTU metric when set, else the device's MTU; 0: none was found.
	MTU int
	// IPv6: the underlay is IPv6.
	IPv6 bool
	// Overhead is what weft adds around an inner packet in this configuration's mode and
	// framing over this family (tunnel.Overhead).
	Overhead int
}

// Found reports whether an underlay was found.
func (u Underlay) Found() bool { return u.MTU > 0 }

// Fit is the largest overlay MTU the underlay carries.
func (u Underlay) Fit() int { return u.MTU - u.Overhead }

// Family is "IPv4" or "IPv6".
func (u Underlay) Family() string {
	if u.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// The device MTUs weft accepts: an IPv4 host's minimum datagram, and the largest inner
// packet whose encapsulation still fits a 65535-byte datagram.
const (
	minMTU = 576
	maxMTU = 65535 - 80
)

// SetUnderlay gives c the underlay the agent found; Resolve (Validate, Check) makes the MTU
// follow it. A zero Underlay means none was found.
func (c *Config) SetUnderlay(u Underlay) { c.underlay = u }

// Underlay is what SetUnderlay gave.
func (c *Config) Underlay() Underlay { return c.underlay }

// MTUFollowsUnderlay reports whether the resolved MTU was not configured but derived: from
// the underlay when one was found, else DefaultMTU.
func (c *Config) MTUFollowsUnderlay() bool { return c.mtuFollows }

// MTUSource says where the resolved MTU comes from, for `weft status` and the log:
// "underlay eth0 1460 − 68 (l3, IPv4)", "configured", or the assumption made when no
// underlay was found.
func (c *Config) MTUSource() string {
	u := c.underlay
	switch {
	case c.mtuFollows && u.Found():
		s := fmt.Sprintf("underlay %s %d − %d (%s, %s)", u.Interface, u.MTU, u.Overhead, c.framingName(), u.Family())
		if c.MTU < u.Fit() {
			s += fmt.Sprintf(", capped at %d", c.MTU)
		}
		return s
	case c.mtuFollows:
		return "assumed: no underlay found, " + c.defaultMTUReason()
	case u.Found():
		return fmt.Sprintf("configured (underlay %s allows %d)", u.Interface, u.Fit())
	}
	return "configured"
}

// defaultMTUReason says what DefaultMTU assumes.
func (c *Config) defaultMTUReason() string {
	if c.Mode == "l2" && c.Encryption == "none" {
		return "a 1500-byte IPv4 underlay as the kernel's vxlan"
	}
	return "a 1500-byte IPv6 underlay"
}

// framingName names the mode and framing in messages: l3, l2, or l2 plain.
func (c *Config) framingName() string {
	if c.Mode == "l2" && c.Encryption == "none" {
		return "l2 plain"
	}
	return c.Mode
}

// resolveMTU fills an unconfigured mtu from the underlay (DefaultMTU when none was found)
// and checks a configured one against it.
func (c *Config) resolveMTU(p *problems) {
	u := c.underlay
	if c.MTU == 0 || c.mtuFollows {
		c.mtuFollows = true
		switch {
		case !u.Found():
			c.MTU = DefaultMTU(c.Mode, c.Encryption)
		case u.Fit() < minMTU:
			c.MTU = u.Fit()
			p.addf("mtu", "the underlay %s has MTU %d, and weft adds %d bytes in %s over %s: %d is left for the overlay, below the %d it needs; raise %s's MTU",
				u.Interface, u.MTU, u.Overhead, c.framingName(), u.Family(), u.Fit(), minMTU, u.Interface)
		default:
			c.MTU = min(u.Fit(), maxMTU)
		}
		return
	}
	if c.MTU < minMTU || c.MTU > maxMTU {
		p.addf("mtu", "mtu %d: must be between %d and %d", c.MTU, minMTU, maxMTU)
		return
	}
	if u.Found() && c.MTU > u.Fit() {
		p.addf("mtu", "mtu %d does not fit the underlay: %s has MTU %d, and weft adds %d bytes in %s over %s, so at most %d; remove mtu to follow the underlay or set it ≤ %d",
			c.MTU, u.Interface, u.MTU, u.Overhead, c.framingName(), u.Family(), u.Fit(), u.Fit())
	}
}
