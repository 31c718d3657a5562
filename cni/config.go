package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Defaults of the network configuration's weft fields.
const (
	// DefaultSocket is the agent's default control socket (config.DefaultConfig).
	DefaultSocket = "/run/weft/weft.sock"
	// DefaultBridge is the host bridge the containers' veths join.
	DefaultBridge = "weft-br0"
	// DefaultDataDir holds the address reservations; under /var/lib so that they survive
	// reboots of the agent and of the runtime (a container that outlives a reboot keeps its
	// address; the runtime's DEL or GC frees it).
	DefaultDataDir = "/var/lib/cni/weft"
	// DefaultWait is how long ADD waits for a starting agent before it gives up: a runtime
	// retries a failed ADD, so a short wait is enough to cover an agent still joining.
	DefaultWait = 10 * time.Second
	// PluginType is the "type" a network configuration names to run this plugin.
	PluginType = "weft-cni"
)

// NetConf is the plugin's network configuration (the conflist's weft entry). The CNI fields
// are spelled out rather than embedding types.PluginConf, whose MarshalJSON would drop ours.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion,omitempty"`
	Name         string          `json:"name,omitempty"`
	Type         string          `json:"type,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	DNS          *types.DNS      `json:"dns,omitempty"`
	// RawPrevResult is the previous plugin's result in a chain (CHECK: our own).
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
	// ValidAttachments is given to GC: every (container, ifname) still in use.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`

	// Socket is the agent's control socket.
	Socket string `json:"socket,omitempty"`
	// Bridge is the host bridge's name (at most 15 bytes).
	Bridge string `json:"bridge,omitempty"`
	// DataDir holds the address reservations, one directory per network name.
	DataDir string `json:"dataDir,omitempty"`
	// Wait is how long ADD waits for the agent, as a Go duration ("10s"); "0s" fails at once.
	Wait string `json:"wait,omitempty"`
	// MTU overrides the overlay MTU the agent reports (0: the agent's). Never larger.
	MTU int `json:"mtu,omitempty"`

	wait time.Duration
}

// configError is a malformed network configuration: code 7, with what to fix.
func configError(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "weft-cni: invalid network configuration: "+fmt.Sprintf(format, args...),
		"fix the weft entry of the conflist (weft cni install writes a valid one)")
}

// ParseConfig decodes and validates a network configuration and fills in defaults. A
// malformed one is a *types.Error with code 6 (not JSON) or 7 (a field out of range).
func ParseConfig(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "weft-cni: network configuration is not valid JSON: "+err.Error(),
			"fix the weft entry of the conflist (weft cni install writes a valid one)")
	}
	if c.Name == "" {
		return nil, configError(`"name" is missing`)
	}
	// Empty is absent (one value for both, so the configuration marshals back to itself).
	if len(c.Capabilities) == 0 {
		c.Capabilities = nil
	}
	if len(c.RawPrevResult) == 0 {
		c.RawPrevResult = nil
	}
	if len(c.ValidAttachments) == 0 {
		c.ValidAttachments = nil
	}
	if c.DNS != nil {
		d := *c.DNS
		for _, l := range []*[]string{&d.Nameservers, &d.Search, &d.Options} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		c.DNS = &d
		if d.Nameservers == nil && d.Search == nil && d.Options == nil && d.Domain == "" {
			c.DNS = nil
		}
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/ \t\n\x00") || c.Bridge == "." || c.Bridge == ".." {
		return nil, configError("bridge %q is not a valid interface name (at most 15 bytes, no '/' or spaces)", c.Bridge)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	// The network name becomes a directory under DataDir.
	if strings.ContainsAny(c.Name, "/\x00") || c.Name == "." || c.Name == ".." || len(c.Name) > 128 {
		return nil, configError("name %q cannot name a directory (no '/', at most 128 bytes)", c.Name)
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		return nil, configError("mtu %d is outside 576..65535 (leave it out to use the overlay's)", c.MTU)
	}
	c.wait = DefaultWait
	if c.Wait != "" {
		d, err := time.ParseDuration(c.Wait)
		if err != nil || d < 0 || d > 5*time.Minute {
			return nil, configError("wait %q is not a duration between 0s and 5m", c.Wait)
		}
		c.wait = d
	}
	if c.DNS != nil {
		for _, s := range c.DNS.Nameservers {
			if net.ParseIP(s) == nil {
				return nil, configError("dns nameserver %q is not an IP address", s)
			}
		}
	}
	return &c, nil
}
