package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
)

//go:embed assets
var assetsFS embed.FS

// Source is what the console reads of the agent, when a page asks or at each sample.
// Every function must be safe for concurrent use; nil ones show nothing.
type Source struct {
	// Self is this host's member name.
	Self func() string
	// Members are the gossip members (with refusals); Peers this host's peers and counters.
	Members func() []api.Member
	Peers   func() []api.Peer
	// Catalog is the service catalog; nil when none runs.
	Catalog Catalog
	// Policy is GET /v1/policy's status; PolicyTest answers as `weft policy test` does
	// (port is "P", "P/tcp", "P/udp" or "icmp"). An error: policy not running yet.
	Policy     func() (api.PolicyStatus, error)
	PolicyTest func(from, to, port string) (api.PolicyTest, error)
}

// Catalog is the part of *catalog.Catalog the console reads.
type Catalog interface {
	All() []catalog.Instance
	Local() []catalog.LocalService
	Index() uint64
	// Wait blocks until the index passes index or ctx ends (a blocking query).
	Wait(ctx context.Context, index uint64) (uint64, error)
}

var _ Catalog = (*catalog.Catalog)(nil)

// Config configures New.
type Config struct {
	// Token, when set, must come with every request (Authorization: Bearer, or the cookie
	// /login sets). Required by the agent on any non-loopback address.
	Token string
	// Refused counts a refused request by reason (host, origin, cross_site, token,
	// method), as weft_http_refused_total{listener="ui"}; nil counts nothing.
	Refused func(reason string)
	// Logger; nil discards.
	Logger *slog.Logger
	// SampleInterval is how often peers' byte counters are read for throughput and the
	// "cluster" event is sent.
	SampleInterval time.Duration
	// History is how many samples each peer's ring keeps.
	History int
	// MaxClients bounds the open event streams; more are answered 503.
	MaxClients int
}

// DefaultConfig is the console as the agent runs it.
func DefaultConfig() Config {
	return Config{
		SampleInterval: time.Second, // the page's "live"; one Peers() call a second is cheap
		History:        300,         // five minutes at one a second: ~5 KB a peer, 1 MB at 200 peers
		MaxClients:     32,          // a few operators' tabs; each holds a goroutine and a socket
	}
}

// Server is the console: an http.Handler, its sampler and event hub. Close ends both.
type Server struct {
	cfg    Config
	src    Source
	log    *slog.Logger
	mux    *http.ServeMux
	assets map[string]*asset // assets.go

	samp *sampler
	hub  *hub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	srv *http.Server
}

// New builds the console and starts its sampler and catalog watch.
func New(cfg Config, src Source) (*Server, error) {
	d := DefaultConfig()
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = d.SampleInterval
	}
	if cfg.History <= 0 {
		cfg.History = d.History
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = d.MaxClients
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refused == nil {
		cfg.Refused = func(string) {}
	}
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		return nil, err
	}
	assets, err := loadAssets(sub)
	if err != nil || assets["index.html"] == nil {
		return nil, fmt.Errorf("console assets: %v", err)
	}
	s := &Server{cfg: cfg, src: src, log: cfg.Logger, assets: assets, hub: newHub(cfg.MaxClients)}
	s.samp = newSampler(cfg.History)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	s.sample(time.Now()) // the first /api/cluster has counters to diff against
	s.wg.Add(2)
	go s.sampleLoop()
	go s.watchLoop()
	return s, nil
}

// ServeHTTP applies the security rules (guard.go), then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.guard(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers on ln until Close, which closes ln; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.mu.Lock()
	if s.ctx.Err() != nil { // closed before it served
		s.mu.Unlock()
		return ln.Close()
	}
	s.srv = srv
	s.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close ends the event streams, the sampler and the watch, then the server Serve runs.
func (s *Server) Close() error {
	s.mu.Lock()
	s.cancel() // event handlers return; Shutdown then finds their connections idle
	srv := s.srv
	s.mu.Unlock()
	s.hub.close()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err = srv.Shutdown(ctx); err != nil {
			err = srv.Close()
		}
		cancel()
	}
	s.wg.Wait()
	return err
}

// pages are the paths answered with the page itself (the script routes on them).
var pages = []string{"GET /map", "GET /host/{name}", "GET /services", "GET /policy"}

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/map", http.StatusFound)
	})
	for _, p := range pages {
		mux.HandleFunc(p, s.page)
	}
	mux.HandleFunc("GET /assets/{name}", s.serveAsset)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { s.assets["icon.svg"].serve(w, r) })
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /api/cluster", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.samp.latest()) })
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.samp.history(s.cfg.SampleInterval))
	})
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /api/services", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.services()) })
	mux.HandleFunc("GET /api/policy", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.policy()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /api/policy/test", s.policyTest)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, http.StatusNotFound, api.Error{Error: "no such console API: " + r.URL.Path})
			return
		}
		http.NotFound(w, r)
	})
	s.mux = mux
}
