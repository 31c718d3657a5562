package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
)

type fakeBackend struct {
	joined []string
	left   bool
}

func (f *fakeBackend) Status() api.Status    { return api.Status{Name: "fake", Members: 3} }
func (f *fakeBackend) Members() []api.Member { return []api.Member{{Name: "a", Status: "alive"}} }
func (f *fakeBackend) Peers() []api.Peer     { return []api.Peer{{PublicKey: "k", RxBytes: 7}} }
func (f *fakeBackend) routes(*http.ServeMux) {}
func (f *fakeBackend) Join(_ context.Context, addrs []string) (int, error) {
	if addrs[0] == "bad" {
		return 0, errors.New("join: bad: unreachable")
	}
	f.joined = addrs
	return len(addrs), nil
}
func (f *fakeBackend) Leave(context.Context) error { f.left = true; return nil }

func TestAPI_ClientRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "w.sock")
	fb := &fakeBackend{}
	srv, err := newAPIServer(sock, fb, NewLogger(os.Stderr, "error"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := api.NewClient(sock)
	if s, err := c.Status(ctx); err != nil || s.Name != "fake" || s.Members != 3 {
		t.Fatalf("status: %+v %v", s, err)
	}
	if m, err := c.Members(ctx); err != nil || len(m) != 1 || m[0].Status != "alive" {
		t.Fatalf("members: %+v %v", m, err)
	}
	if p, err := c.Peers(ctx); err != nil || len(p) != 1 || p[0].RxBytes != 7 {
		t.Fatalf("peers: %+v %v", p, err)
	}
	if n, err := c.Join(ctx, []string{"x", "y"}); err != nil || n != 2 || len(fb.joined) != 2 {
		t.Fatalf("join: %d %v", n, err)
	}
	if _, err := c.Join(ctx, []string{"bad"}); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("join error not passed through: %v", err)
	}
	if err := c.Leave(ctx); err != nil || !fb.left {
		t.Fatalf("leave: %v", err)
	}
	// A second agent on the same socket is refused while the first runs.
	if _, err := newAPIServer(sock, fb, NewLogger(os.Stderr, "error")); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on a live socket: %v", err)
	}
}
