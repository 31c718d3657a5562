package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// HostNetwork is what the agent tells the plugin: GET /v1/subnet on the control socket
// (api.Subnet is the same document on the agent's side).
type HostNetwork struct {
	// Network is the cluster CIDR.
	Network netip.Prefix `json:"network"`
	// Subnet is this host's /24.
	Subnet netip.Prefix `json:"subnet"`
	// Address is the agent's own overlay address (on the TUN).
	Address netip.Addr `json:"address"`
	// Gateway is the bridge's address, the containers' next hop.
	Gateway netip.Addr `json:"gateway"`
	// MTU is the overlay's: the containers' interfaces take it.
	MTU int `json:"mtu"`
	// IPMasq tells whether the agent masquerades containers' traffic leaving the cluster.
	IPMasq bool `json:"ipmasq"`
	// Containers is false while the agent has container networking off (cni.enabled).
	Containers bool `json:"containers"`
}

// errNoAgent is an agent that does not answer on the socket.
var errNoAgent = errors.New("no weft agent answers")

// fetchHostNetwork asks the agent at socket, retrying until wait has passed while the agent
// is not up yet or has no subnet yet.
func fetchHostNetwork(ctx context.Context, socket string, wait time.Duration) (HostNetwork, error) {
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(wait)
	for {
		hn, err := getHostNetwork(ctx, c)
		if err == nil && hn.Subnet.IsValid() {
			return hn, nil
		}
		if err == nil {
			err = errors.New("the agent has no subnet yet")
		}
		if time.Now().After(deadline) {
			return HostNetwork{}, err
		}
		select {
		case <-ctx.Done():
			return HostNetwork{}, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func getHostNetwork(ctx context.Context, c *http.Client) (HostNetwork, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://weft/v1/subnet", nil)
	if err != nil {
		return HostNetwork{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return HostNetwork{}, fmt.Errorf("%w: %v", errNoAgent, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return HostNetwork{}, fmt.Errorf("%w: %v", errNoAgent, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return HostNetwork{}, errors.New("the agent is too old to serve containers (no /v1/subnet): upgrade weft")
	}
	if resp.StatusCode != http.StatusOK {
		return HostNetwork{}, fmt.Errorf("agent: %s: %s", resp.Status, body)
	}
	var hn HostNetwork
	if err := json.Unmarshal(body, &hn); err != nil {
		return HostNetwork{}, fmt.Errorf("agent's /v1/subnet: %w", err)
	}
	if hn.Subnet.IsValid() && (!hn.Network.IsValid() || !hn.Gateway.IsValid() || !hn.Subnet.Contains(hn.Gateway) || hn.MTU < 576) {
		return HostNetwork{}, fmt.Errorf("agent's /v1/subnet is inconsistent: %s", body)
	}
	return hn, nil
}
