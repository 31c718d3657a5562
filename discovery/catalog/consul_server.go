package catalog

// ConsulServer: the HTTP servers that serve a ConsulHandler on the listen addresses, and
// their shutdown.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ConsulServer serves a ConsulHandler on listen addresses.
type ConsulServer struct {
	h   http.Handler
	log *slog.Logger
	// base is every request's parent context: Shutdown cancels it first, so blocking
	// queries answer at once and the graceful shutdown does not wait out their ?wait.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	srvs   []*http.Server
	addrs  []netip.AddrPort
	wg     sync.WaitGroup
}

// NewConsulServer binds every address (host:port; port 0 picks one) and serves h on them
// until Shutdown. On error nothing stays bound.
func NewConsulServer(listen []string, h http.Handler, log *slog.Logger) (*ConsulServer, error) {
	if len(listen) == 0 {
		return nil, errors.New("catalog: consul: no listen address")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &ConsulServer{h: h, log: log}
	s.base, s.cancel = context.WithCancel(context.Background())
	var lns []net.Listener
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			s.cancel()
			return nil, fmt.Errorf("catalog: consul: listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
		s.addrs = append(s.addrs, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      ConsulMaxWait + time.Minute, // a blocking query answers within its wait
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return s.base },
		}
		s.srvs = append(s.srvs, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("consul api stopped", "addr", ln.Addr(), "err", err)
			}
		}()
	}
	log.Info("consul api listening", "addrs", s.addrs)
	return s, nil
}

// Addrs returns the bound addresses.
func (s *ConsulServer) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Shutdown stops the servers; blocking queries still waiting are cut when ctx ends.
func (s *ConsulServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.srvs
	s.srvs = nil
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, srv.Close())
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
