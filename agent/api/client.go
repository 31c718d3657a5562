package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
)

// Client talks to a running agent over its control socket. The CLI is built on it.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the agent listening on the unix socket at path.
func NewClient(path string) *Client {
	return &Client{
		path: path,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}},
	}
}

// explain turns a dial failure into a message that says what to do.
func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no weft agent is running at %s: start one with `weft agent -c weft.yaml` (or point --socket at its control_socket)", c.path)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("permission denied on %s: the control socket is root's (mode 0600); run the command as root", c.path)
	}
	return err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://weft"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return c.explain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("agent answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, "GET", "/v1/status", nil, &s)
}

// Members lists the gossip members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var m []Member
	return m, c.do(ctx, "GET", "/v1/members", nil, &m)
}

// Peers lists the datapath peers with their counters.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var p []Peer
	return p, c.do(ctx, "GET", "/v1/peers", nil, &p)
}

// Join asks the agent to join the members at addrs.
func (c *Client) Join(ctx context.Context, addrs []string) (int, error) {
	var r JoinResponse
	return r.Joined, c.do(ctx, "POST", "/v1/join", JoinRequest{Addrs: addrs}, &r)
}

// Leave asks the agent to leave the cluster gracefully and exit.
func (c *Client) Leave(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/leave", struct{}{}, nil)
}

// Reload asks the agent to re-read its pki files (certificate, CAs, blocklist).
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var r ReloadResult
	err := c.do(ctx, "POST", "/v1/reload", struct{}{}, &r)
	return r, err
}

// WaitReady polls the socket until the agent answers or the timeout passes.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) (Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Status(ctx)
		if err == nil {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Services returns every instance in the catalog (passing or not). With index > 0 it
// blocks until the catalog's index passes index or wait elapses (a blocking query).
func (c *Client) Services(ctx context.Context, index uint64, wait time.Duration) (ServicesResponse, error) {
	var r ServicesResponse
	path := "/v1/services"
	if index > 0 {
		path += fmt.Sprintf("?index=%d&wait=%s", index, wait)
	}
	return r, c.do(ctx, "GET", path, nil, &r)
}

// Instances returns the instances of one service: passing ones, or all.
func (c *Client) Instances(ctx context.Context, name string, all bool) ([]catalog.Instance, error) {
	var r []catalog.Instance
	path := "/v1/services/" + url.PathEscape(name)
	if all {
		path += "?all=1"
	}
	return r, c.do(ctx, "GET", path, nil, &r)
}

// LocalServices returns this agent's registrations with their check state.
func (c *Client) LocalServices(ctx context.Context) ([]catalog.LocalService, error) {
	var r []catalog.LocalService
	return r, c.do(ctx, "GET", "/v1/local-services", nil, &r)
}

// Register registers a local service.
func (c *Client) Register(ctx context.Context, s catalog.Service) error {
	return c.do(ctx, "POST", "/v1/services", s, nil)
}

// Deregister removes a local service.
func (c *Client) Deregister(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/services/"+url.PathEscape(name), nil, nil)
}

// Renew renews a service's ttl check.
func (c *Client) Renew(ctx context.Context, name string) error {
	return c.do(ctx, "PUT", "/v1/services/"+url.PathEscape(name)+"/renew", struct{}{}, nil)
}

// FDB lists the agent's L2 forwarding database.
func (c *Client) FDB(ctx context.Context) ([]FDBEntry, error) {
	var r []FDBEntry
	return r, c.do(ctx, "GET", "/v1/fdb", nil, &r)
}
