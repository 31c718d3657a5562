package api

import (
	"context"
	"fmt"
)

// PingPeer refreshes the peer of t from the agent (its last handshake, endpoint and state).
func (c *Client) PingPeer(ctx context.Context, t PingTarget) (Peer, error) {
	ps, err := c.Peers(ctx)
	if err != nil {
		return Peer{}, err
	}
	for _, p := range ps {
		if p.PublicKey == t.Peer.PublicKey {
			return p, nil
		}
	}
	return Peer{}, fmt.Errorf("peer %s is gone", t.Peer.PublicKey)
}
