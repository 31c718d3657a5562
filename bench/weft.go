package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/netlab"
	"gopkg.in/yaml.v3"
)

// weftVariant is what differs between the weft rows: the agent's mode and encryption, and
// the overlay addressing that follows from the mode.
type weftVariant struct {
	mode       string // l3 | l2
	encryption string // wireguard | none
}

// Overlay of the weft systems. L3: each host owns a /24 of the cluster CIDR and routes the
// other's through the tunnel. L2: both hosts sit on one /24 bridged by the tunnel.
const (
	weftCluster  = "10.232.0.0/16"
	weftL3SubA   = "10.232.1.0/24"
	weftL3SubB   = "10.232.2.0/24"
	weftL3AddrB  = "10.232.2.1"
	weftL2Subnet = "10.232.3.0/24"
	weftL2AddrA  = "10.232.3.1"
	weftL2AddrB  = "10.232.3.2"
	weftIf       = "weft0"
	weftPort     = 51820
	weftVXLAN    = 4789 // plain RFC 7348 data port of encryption: none
)

// weftConfig is the subset of the agent's YAML configuration (ARCHITECTURE.md, "Agent
// configuration") the benchmark sets.
type weftConfig struct {
	Name          string     `yaml:"name"`
	Mode          string     `yaml:"mode"`
	Encryption    string     `yaml:"encryption"`
	Interface     string     `yaml:"interface"`
	ListenPort    int        `yaml:"listen_port"`
	StateDir      string     `yaml:"state_dir"`
	ClusterCIDR   string     `yaml:"cluster_cidr"`
	Subnet        string     `yaml:"subnet"`
	Address       string     `yaml:"address,omitempty"`
	Peers         []weftPeer `yaml:"peers"`
	Gossip        weftGossip `yaml:"gossip"`
	ControlSocket string     `yaml:"control_socket"`
	DNS           weftDNS    `yaml:"dns"`
	LogLevel      string     `yaml:"log_level"`
	// Debug: every bench agent serves pprof on its namespace's loopback (Options.ProfileDir
	// fetches from it; idle otherwise).
	Debug weftDebug `yaml:"debug"`
	// Netstack and Forward: the weft-netstack row (netstack.go).
	Netstack   bool          `yaml:"netstack,omitempty"`
	PolicyFile string        `yaml:"policy_file,omitempty"`
	Forward    []weftForward `yaml:"forward,omitempty"`
}

type weftDebug struct {
	PprofListen string `yaml:"pprof_listen"`
}

// weftPprof is where every bench agent serves pprof, inside its own namespace.
const weftPprof = "127.0.0.1:6060"

type weftForward struct {
	Listen string `yaml:"listen"`
	To     string `yaml:"to"`
}

type weftPeer struct {
	PublicKey  string   `yaml:"public_key"`
	Endpoint   string   `yaml:"endpoint"`
	AllowedIPs []string `yaml:"allowed_ips"`
}

type weftGossip struct {
	Disabled bool `yaml:"disabled"`
}

type weftDNS struct {
	Disabled bool `yaml:"disabled"`
}

// weftSystem is a row that runs `weft agent -c FILE` in both namespaces.
func weftSystem(name, desc string, v weftVariant) *system {
	return &system{
		name:   name,
		desc:   desc,
		ifname: weftIf,
		weft:   true,
		check:  func(o *Options) error { return probeBinary(o.WeftBin, "--config", "agent", "--help") },
		up: func(ctx context.Context, s *session) (string, error) {
			return weftUp(ctx, s, v)
		},
	}
}

// weftConfigs returns the two hosts' configurations for variant v and b's overlay address.
func weftConfigs(v weftVariant, dir string, ka, kb keyPair) (a, b weftConfig, target string) {
	port := weftPort
	if v.encryption == "none" {
		port = weftVXLAN
	}
	base := func(name string) weftConfig {
		return weftConfig{
			Name: "bench-" + name, Mode: v.mode, Encryption: v.encryption, Interface: weftIf,
			ListenPort: port, StateDir: filepath.Join(dir, name, "state"), ClusterCIDR: weftCluster,
			Gossip: weftGossip{Disabled: true}, DNS: weftDNS{Disabled: true}, LogLevel: "warn", ControlSocket: filepath.Join(dir, name, "weft.sock"),
			Debug: weftDebug{PprofListen: weftPprof},
		}
	}
	a, b = base("a"), base("b")
	endpoint := func(ip string) string { return ip + ":" + strconv.Itoa(port) }
	peer := func(k keyPair, ip string, allowed string) weftPeer {
		// The public key names the peer even without encryption (the agent requires it).
		return weftPeer{PublicKey: k.public.String(), Endpoint: endpoint(ip), AllowedIPs: []string{allowed}}
	}
	if v.mode == "l2" {
		a.Subnet, a.Address = weftL2Subnet, weftL2AddrA
		b.Subnet, b.Address = weftL2Subnet, weftL2AddrB
		a.Peers = []weftPeer{peer(kb, underlayB, weftL2AddrB+"/32")}
		b.Peers = []weftPeer{peer(ka, underlayA, weftL2AddrA+"/32")}
		return a, b, weftL2AddrB
	}
	a.Subnet, b.Subnet = weftL3SubA, weftL3SubB
	a.Peers = []weftPeer{peer(kb, underlayB, weftL3SubB)}
	b.Peers = []weftPeer{peer(ka, underlayA, weftL3SubA)}
	return a, b, weftL3AddrB
}

// weftUp writes both configurations and private keys and starts the agents.
func weftUp(ctx context.Context, s *session, v weftVariant) (string, error) {
	ka, kb, err := newKeyPairs()
	if err != nil {
		return "", err
	}
	ca, cb, target := weftConfigs(v, s.dir, ka, kb)
	return target, startWeftPair(ctx, s, ca, cb, ka, kb)
}

// startWeftPair writes both hosts' files and starts their agents, waiting for the device.
func startWeftPair(ctx context.Context, s *session, ca, cb weftConfig, ka, kb keyPair) error {
	for _, side := range []struct {
		h   *netlab.Host
		cfg weftConfig
		key keyPair
	}{{s.a, ca, ka}, {s.b, cb, kb}} {
		path, err := writeWeftFiles(side.cfg, side.key)
		if err != nil {
			return err
		}
		p, err := s.startSystem(side.h, s.opts.WeftBin, "agent", "-c", path)
		if err != nil {
			return err
		}
		if err := s.waitLink(ctx, side.h, weftIf, p); err != nil {
			return err
		}
	}
	return nil
}

// writeWeftFiles writes the private key into the state directory (crypto.SavePrivateKeyFile,
// where the agent looks for it) and the YAML next to it; it returns the YAML's path.
func writeWeftFiles(cfg weftConfig, k keyPair) (string, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return "", err
	}
	if err := crypto.SavePrivateKeyFile(filepath.Join(cfg.StateDir, "private.key"), k.private); err != nil {
		return "", err
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("weft config: %w", err)
	}
	path := filepath.Join(filepath.Dir(cfg.StateDir), "weft.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}
