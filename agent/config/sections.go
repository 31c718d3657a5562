package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/weftnet/weft/discovery/membership"
)

// ClientsConfig configures stock WireGuard clients.
type ClientsConfig struct {
	// Range is where client addresses are allocated: "A-B" (inclusive) or a prefix, inside
	// this host's /24. Empty: the host's /24 from .200 to .254.
	Range string `yaml:"range"`
}

// CNIConfig is the cni: section.
type CNIConfig struct {
	// Enabled serves containers: forwarding, the routing guard, subnet.env, /v1/subnet's
	// "containers": true. Off by default: forwarding changes what the host does with packets.
	Enabled bool `yaml:"enabled"`
	// SubnetEnv is where Flannel's subnet.env is written (empty: not written).
	SubnetEnv string `yaml:"subnet_env"`
	// Bridge is the containers' bridge, as the conflist names it.
	Bridge string `yaml:"bridge"`
	// IPMasq masquerades containers' traffic leaving the cluster CIDR (needs nft).
	IPMasq bool `yaml:"ipmasq"`
}

func (c CNIConfig) validate(mode string) error {
	if !c.Enabled {
		return nil
	}
	if mode != "l3" {
		return errors.New("cni.enabled needs mode: l3 (containers are routed, not bridged, onto the overlay)")
	}
	if c.Bridge == "" || len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/ ") {
		return fmt.Errorf("cni.bridge %q: an interface name of 1 to 15 bytes", c.Bridge)
	}
	return nil
}

// check adds the problem validate finds, under the key it is about.
func (c CNIConfig) check(mode string, p *problems) {
	if err := c.validate(mode); err != nil {
		key := "cni.bridge"
		if mode != "l3" {
			key = "cni.enabled"
		}
		p.add(key, err)
	}
}

// DebugConfig holds diagnostics that are off by default.
type DebugConfig struct {
	// PprofListen serves Go's profiles (net/http/pprof: /debug/pprof/, profile, heap, trace …)
	// on this TCP address; empty: off. It must be a loopback address unless PprofAllowRemote:
	// a profile shows memory contents and a CPU profile costs CPU, so it is for the operator
	// on the host (`go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10`).
	PprofListen string `yaml:"pprof_listen"`
	// PprofAllowRemote lets PprofListen bind a non-loopback address.
	PprofAllowRemote bool `yaml:"pprof_allow_remote"`
}

// ErrPprofNotLoopback: debug.pprof_listen names an address other hosts can reach, without
// debug.pprof_allow_remote.
var ErrPprofNotLoopback = errors.New("pprof listener must be on a loopback address (or set debug.pprof_allow_remote)")

// GossipKey returns the configured gossip key, or nil when none is configured.
func GossipKey(cfg GossipConfig) ([]byte, error) {
	text := cfg.Key
	if cfg.KeyFile != "" {
		st, err := os.Stat(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gossip key_file: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("gossip key_file %s is readable by group or others (mode %o): run chmod 600 %s", cfg.KeyFile, st.Mode().Perm(), cfg.KeyFile)
		}
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("gossip key_file: %w", err)
		}
		text = string(b)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	return membership.ParseGossipKey(text)
}

// SplitHostPort splits HOST:PORT; a bare host gets defPort and an empty string gives "", 0.
func SplitHostPort(s string, defPort int) (string, int, error) {
	if s == "" {
		return "", 0, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return s, defPort, nil //nolint:nilerr // a bare host means the default port
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", s)
	}
	return host, p, nil
}

// validFraming checks a static peer's framing.
func validFraming(f, mode string) error {
	switch f {
	case "", "weft":
		return nil
	case "wireguard":
		if mode != "l3" {
			return errors.New("framing: wireguard is L3 only (a stock WireGuard peer carries IP packets, not Ethernet frames); use mode l3 or framing weft")
		}
		return nil
	}
	return fmt.Errorf("framing %q: must be weft or wireguard", f)
}
