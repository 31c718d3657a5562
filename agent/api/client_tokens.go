package api

import (
	"context"
	"net/url"
	"time"
)

// Join tokens of a CA host (`weft token`, agent/wire_enroll.go):
//
//	GET    /v1/tokens          TokenList
//	POST   /v1/tokens          TokenRequest → TokenCreated
//	DELETE /v1/tokens/ID       revoke

// TokenRequest asks a CA host for a join token.
type TokenRequest struct {
	Groups []string `json:"groups,omitempty"`
	TTL    string   `json:"ttl"` // a Go duration
	Uses   int      `json:"uses"`
}

// TokenInfo is one token as listed (no secret).
type TokenInfo struct {
	ID      string    `json:"id"`
	Groups  []string  `json:"groups,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Revoked bool      `json:"revoked,omitempty"`
}

// TokenCreated is a new token: its text (shown once) and the command that joins with it.
type TokenCreated struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
	// Join is the `weft agent` command line a new host runs.
	Join string `json:"join"`
}

// TokenList is the CA host's tokens, its /24 allocations and its enrollment counters.
type TokenList struct {
	Tokens      []TokenInfo       `json:"tokens"`
	Allocations []TokenAllocation `json:"allocations"`
	Counters    map[string]uint64 `json:"counters"`
}

// TokenAllocation is one /24 handed out by the CA host.
type TokenAllocation struct {
	Name      string    `json:"name"`
	PublicKey string    `json:"public_key"`
	Prefix    string    `json:"prefix"`
	Issued    time.Time `json:"issued"`
}

// Tokens lists the CA host's tokens.
func (c *Client) Tokens(ctx context.Context) (TokenList, error) {
	var l TokenList
	return l, c.do(ctx, "GET", "/v1/tokens", nil, &l)
}

// CreateToken creates a join token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenCreated, error) {
	var t TokenCreated
	return t, c.do(ctx, "POST", "/v1/tokens", req, &t)
}

// RevokeToken revokes the token id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
}
