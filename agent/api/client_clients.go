package api

import (
	"context"
	"net/url"
)

// Clients lists this host's stock WireGuard clients.
func (c *Client) Clients(ctx context.Context) ([]WGClient, error) {
	var out []WGClient
	return out, c.do(ctx, "GET", "/v1/clients", nil, &out)
}

// AddClient adds a stock WireGuard client; the answer carries its wg-quick config.
func (c *Client) AddClient(ctx context.Context, req ClientAdd) (ClientAdded, error) {
	var out ClientAdded
	return out, c.do(ctx, "POST", "/v1/clients", req, &out)
}

// RemoveClient removes a client and its peer.
func (c *Client) RemoveClient(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/clients/"+url.PathEscape(name), nil, nil)
}
