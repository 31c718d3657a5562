package api

import (
	"context"
	"fmt"
)

// Keyring lists this host's gossip keys.
func (c *Client) Keyring(ctx context.Context) (KeyringStatus, error) {
	var st KeyringStatus
	return st, c.do(ctx, "GET", "/v1/keyring", nil, &st)
}

// KeyringOp installs ("install"), switches to ("use") or removes ("remove") a key on this host.
func (c *Client) KeyringOp(ctx context.Context, op, key string) (KeyringStatus, error) {
	method := map[string]string{"install": "POST", "use": "PUT", "remove": "DELETE"}[op]
	if method == "" {
		return KeyringStatus{}, fmt.Errorf("keyring: unknown operation %q", op)
	}
	var st KeyringStatus
	return st, c.do(ctx, method, "/v1/keyring", KeyRequest{Key: key}, &st)
}
