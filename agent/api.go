package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
)

// The control API: HTTP+JSON on a unix socket that only root (the socket's owner) may open.
// The CLI is its client (client.go). Routes:
//
//	GET  /v1/status                 Status
//	GET  /v1/members                []Member
//	GET  /v1/peers                  []Peer
//	POST /v1/join                   JoinRequest → JoinResponse
//	POST /v1/leave                  graceful leave, then the agent exits
//	GET  /v1/services[?index=N&wait=30s]      catalog (blocking query when index is given)
//	GET  /v1/services/NAME[?all=1]            instances of one service (passing only by default)
//	POST /v1/services               register a local service
//	DELETE /v1/services/NAME        deregister
//	PUT  /v1/services/NAME/renew    renew a ttl check
//	GET  /v1/fdb                    the L2 forwarding database
//	POST /v1/reload                 as SIGHUP: apply log_level, services and the pki files; name what needs a restart
//	GET|POST /v1/clients, DELETE /v1/clients/NAME   stock WireGuard clients (clients.go)

// apiBackend is what the API serves; *Agent implements it (a fake in tests).
type apiBackend interface {
	Status() api.Status
	Members() []api.Member
	Peers() []api.Peer
	Join(ctx context.Context, addrs []string) (int, error)
	Leave(ctx context.Context) error
	routes(mux *http.ServeMux) // optional extra routes (services, fdb)
}

// apiServer serves the control API on a unix socket.
type apiServer struct {
	ln   net.Listener
	srv  *http.Server
	path string
	log  *slog.Logger
}

// listenControl creates the socket's directory (0755) and the socket itself (0600). A stale
// socket left by a crashed agent is replaced; a live one is an error.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w (run the agent as root, or set control_socket / --socket to a writable path)", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another weft agent running? (set control_socket to run a second one)", path)
	}
	_ = os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w (run the agent as root, or set control_socket / --socket to a writable path)", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

func newAPIServer(path string, b apiBackend, log *slog.Logger) (*apiServer, error) {
	ln, err := listenControl(path)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, b.Status()) })
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, b.Members()) })
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, b.Peers()) })
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req api.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad join request: %w", err))
			return
		}
		if len(req.Addrs) == 0 {
			jsonhttp.WriteError(w, http.StatusBadRequest, errors.New("join needs at least one address"))
			return
		}
		n, err := b.Join(r.Context(), req.Addrs)
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadGateway, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, api.JoinResponse{Joined: n})
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Leave(r.Context()); err != nil {
			jsonhttp.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	})
	b.routes(mux)
	s := &apiServer{ln: ln, path: path, log: log, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control API stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *apiServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	_ = os.Remove(s.path)
	return err
}
