package config

import (
	"fmt"
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// At says where the entry was read, " (line N)", for messages; empty when not from a file.
func (p PeerConfig) At() string {
	if p.line > 0 {
		return fmt.Sprintf(" (line %d)", p.line)
	}
	return ""
}

// UnmarshalYAML records the line of a peer entry for later messages.
func (p *PeerConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain PeerConfig
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	*p = PeerConfig(v)
	p.line = n.Line
	return nil
}

// Prefix is a netip.Prefix read from YAML with a line-numbered error.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML parses "10.42.0.0/16".
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		p.Prefix = netip.Prefix{}
		return nil
	}
	v, err := netip.ParsePrefix(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a CIDR prefix (like 10.42.0.0/16)", n.Line, n.Value)
	}
	p.Prefix = v.Masked()
	return nil
}

// MarshalYAML writes the prefix as text.
func (p Prefix) MarshalYAML() (any, error) {
	if !p.IsValid() {
		return "", nil
	}
	return p.String(), nil
}

// Addr is a netip.Addr read from YAML with a line-numbered error.
type Addr struct{ netip.Addr }

// UnmarshalYAML parses "10.42.1.1".
func (a *Addr) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		a.Addr = netip.Addr{}
		return nil
	}
	v, err := netip.ParseAddr(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not an IP address", n.Line, n.Value)
	}
	a.Addr = v
	return nil
}

// MarshalYAML writes the address as text.
func (a Addr) MarshalYAML() (any, error) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), nil
}

// AddrPort is a netip.AddrPort read from YAML with a line-numbered error.
type AddrPort struct{ netip.AddrPort }

// UnmarshalYAML parses "192.0.2.1:51820" or "[2001:db8::1]:51820".
func (a *AddrPort) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		a.AddrPort = netip.AddrPort{}
		return nil
	}
	v, err := netip.ParseAddrPort(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not an IP:port endpoint (like 192.0.2.1:51820)", n.Line, n.Value)
	}
	a.AddrPort = v
	return nil
}

// MarshalYAML writes the endpoint as text.
func (a AddrPort) MarshalYAML() (any, error) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), nil
}

// Duration is a time.Duration read from YAML as "5s", with a line-numbered error.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 5s or 2m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// WithoutLines copies peers without the file lines they were read at (moving an entry in the
// file is no change).
func WithoutLines(ps []PeerConfig) []PeerConfig {
	out := make([]PeerConfig, len(ps))
	for i, p := range ps {
		p.line = 0
		out[i] = p
	}
	return out
}
