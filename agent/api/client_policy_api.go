package api

import (
	"context"
	"net/url"
)

// Policy returns the policy in force with its counters.
func (c *Client) Policy(ctx context.Context) (PolicyStatus, error) {
	var s PolicyStatus
	return s, c.do(ctx, "GET", "/v1/policy", nil, &s)
}

// ApplyPolicy hands a signed policy to the agent, which installs and spreads it.
func (c *Client) ApplyPolicy(ctx context.Context, signed []byte) (uint64, error) {
	var r PolicyApplied
	return r.Version, c.do(ctx, "POST", "/v1/policy", PolicyApply{Signed: signed}, &r)
}

// TestPolicy asks for the verdict of a would-be flow.
func (c *Client) TestPolicy(ctx context.Context, from, to, port string) (PolicyTest, error) {
	var r PolicyTest
	q := url.Values{"from": {from}, "to": {to}, "port": {port}}
	return r, c.do(ctx, "GET", "/v1/policy/test?"+q.Encode(), nil, &r)
}
