package netproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Network is the overlay side of every proxy: weft's netstack satisfies it.
type Network interface {
	// DialTCP opens a TCP connection to an overlay address.
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// DialUDP opens a connected UDP socket to an overlay address.
	DialUDP(dst netip.AddrPort) (net.Conn, error)
	// ListenUDP opens an unconnected UDP socket on an ephemeral overlay port.
	ListenUDP() (net.PacketConn, error)
}

// Resolver turns a request's host (a name, or an address literal) into an overlay address.
// An error refuses the request; wrap ErrNotAllowed for a destination outside the overlay and
// ErrUnknownName for a name that has no (passing) answer.
type Resolver func(ctx context.Context, host string) (netip.Addr, error)

// The reasons a resolver refuses a destination.
var (
	ErrNotAllowed  = errors.New("destination is outside the overlay")
	ErrUnknownName = errors.New("no such name in the overlay")
)

// Limits bound what one proxy holds at a time. The zero value of a field takes its default.
type Limits struct {
	// MaxConns bounds concurrent TCP connections (SOCKS5 control connections included);
	// one over the bound is closed at once. Default 1024: well under a user's file limit.
	MaxConns int
	// MaxUDPSessions bounds a UDP relay's session table and each UDP association's set of
	// peers. Default 256.
	MaxUDPSessions int
	// UDPIdle ends a UDP session with no traffic in either direction. Default 60s, the
	// NAT timeout most UDP protocols expect to outlive with their own keepalives.
	UDPIdle time.Duration
	// Handshake bounds a SOCKS5 greeting and request, or an HTTP request's header. Default 10s.
	Handshake time.Duration
	// DialTimeout bounds one overlay dial. Default 10s.
	DialTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = 1024
	}
	if l.MaxUDPSessions <= 0 {
		l.MaxUDPSessions = 256
	}
	if l.UDPIdle <= 0 {
		l.UDPIdle = 60 * time.Second
	}
	if l.Handshake <= 0 {
		l.Handshake = 10 * time.Second
	}
	if l.DialTimeout <= 0 {
		l.DialTimeout = 10 * time.Second
	}
	return l
}

// Counters counts what the proxies refused, by reason, and what they carried. Safe for
// concurrent use; one Counters may be shared by several proxies.
type Counters struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (c *Counters) add(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]uint64)
	}
	c.m[name]++
	c.mu.Unlock()
}

// Snapshot returns the counters by name.
func (c *Counters) Snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// Names lists the counter names seen so far, sorted.
func (c *Counters) Names() []string {
	s := c.Snapshot()
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// server is what every TCP-accepting proxy shares: the listener, the connection bound and
// the goroutines to wait for on Close.
type server struct {
	// ctx ends with Close: dials in progress give up instead of holding Close for their
	// whole timeout.
	ctx     context.Context
	cancel  context.CancelFunc
	ln      net.Listener
	log     *slog.Logger
	cnt     *Counters
	sem     chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	handler func(net.Conn)
}

func newServer(ln net.Listener, maxConns int, log *slog.Logger, cnt *Counters, h func(net.Conn)) *server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &server{ctx: ctx, cancel: cancel, ln: ln, log: log, cnt: cnt, sem: make(chan struct{}, maxConns), conns: map[net.Conn]struct{}{}, handler: h}
}

func (s *server) serve() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				if s.closed.Load() || errors.Is(err, net.ErrClosed) {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				s.log.Warn("proxy accept", "err", err)
				time.Sleep(50 * time.Millisecond) // EMFILE and friends: do not spin
				continue
			}
			select {
			case s.sem <- struct{}{}:
			default:
				s.cnt.add("conn_limit")
				c.Close()
				continue
			}
			if !s.track(c) {
				<-s.sem
				c.Close()
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { <-s.sem }()
				defer s.untrack(c)
				s.handler(c)
			}()
		}
	}()
}

func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Addr is the listener's address.
func (s *server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for their goroutines.
func (s *server) Close() error {
	s.closed.Store(true)
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// splice copies both ways until both directions end, half-closing where the connection
// allows it, and closes both.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// dialTCP resolves host and dials it on the overlay within the limits' dial timeout.
func dialTCP(ctx context.Context, nw Network, resolve Resolver, host string, port uint16, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr, err := resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	return nw.DialTCP(ctx, netip.AddrPortFrom(addr, port))
}
