package netproxy

// The HTTP proxy: CONNECT tunnels (RFC 9110 section 9.3.6) and absolute-URI requests
// ("GET http://web.service.weft/ HTTP/1.1") forwarded over the overlay. net/http runs one
// goroutine per connection; a CONNECT hijacks it and splices it to the overlay connection.

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPConfig configures an HTTP proxy.
type HTTPConfig struct {
	Network Network
	Resolve Resolver
	// Username and Password, both set, require Proxy-Authorization: Basic.
	Username, Password string
	Limits             Limits
	Logger             *slog.Logger
	Counters           *Counters
}

// HTTPProxy is a running HTTP proxy.
type HTTPProxy struct {
	cfg  HTTPConfig
	lim  Limits
	srv  *http.Server
	ln   net.Listener
	tr   *http.Transport
	done chan struct{}
}

// ServeHTTP serves the HTTP proxy on ln until Close.
func ServeHTTP(ln net.Listener, cfg HTTPConfig) (*HTTPProxy, error) {
	if cfg.Network == nil || cfg.Resolve == nil {
		return nil, errors.New("netproxy: http: no network or resolver")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("netproxy: http: set both username and password, or neither")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &HTTPProxy{cfg: cfg, lim: cfg.Limits.withDefaults(), done: make(chan struct{})}
	p.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := splitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialTCP(ctx, cfg.Network, cfg.Resolve, host, port, p.lim.DialTimeout)
		},
		Proxy:                 nil, // never chain to the environment's proxy
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	p.ln = &limitListener{Listener: ln, sem: make(chan struct{}, p.lim.MaxConns), cnt: cfg.Counters}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.lim.Handshake,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(p.ln)
	}()
	return p, nil
}

// Addr is the listener's address.
func (p *HTTPProxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops the proxy and closes its connections (hijacked CONNECT tunnels included).
func (p *HTTPProxy) Close() error {
	err := p.srv.Close()
	p.ln.(*limitListener).closeAll()
	<-p.done
	p.tr.CloseIdleConnections()
	return err
}

func splitHostPort(hp string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, errors.New("bad port")
	}
	return host, uint16(n), nil
}

func (p *HTTPProxy) authorized(r *http.Request) bool {
	if p.cfg.Username == "" {
		return true
	}
	v, ok := strings.CutPrefix(r.Header.Get("Proxy-Authorization"), "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return false
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	u := subtle.ConstantTimeCompare([]byte(user), []byte(p.cfg.Username))
	w := subtle.ConstantTimeCompare([]byte(pass), []byte(p.cfg.Password))
	return u&w == 1
}

func (p *HTTPProxy) fail(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, ErrNotAllowed):
		p.cfg.Counters.add("not_allowed")
		code = http.StatusForbidden
	case errors.Is(err, ErrUnknownName):
		p.cfg.Counters.add("unknown_name")
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	default:
		p.cfg.Counters.add("http_dial_failed")
	}
	http.Error(w, err.Error(), code)
}

// ServeHTTP handles one proxy request.
func (p *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(r) {
		p.cfg.Counters.add("http_auth_failed")
		w.Header().Set("Proxy-Authenticate", `Basic realm="weft"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Scheme != "http" || r.URL.Host == "" {
		p.cfg.Counters.add("http_bad_request")
		http.Error(w, "this is a proxy: send CONNECT host:port, or an absolute http:// URI", http.StatusBadRequest)
		return
	}
	p.forward(w, r)
}

func (p *HTTPProxy) connect(w http.ResponseWriter, r *http.Request) {
	host, port, err := splitHostPort(r.Host)
	if err != nil {
		p.cfg.Counters.add("http_bad_request")
		http.Error(w, "CONNECT wants host:port", http.StatusBadRequest)
		return
	}
	up, err := dialTCP(r.Context(), p.cfg.Network, p.cfg.Resolve, host, port, p.lim.DialTimeout)
	if err != nil {
		p.fail(w, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		c.Close()
		up.Close()
		return
	}
	// Bytes the client sent after its request (pipelined early data) are in brw.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			c.Close()
			up.Close()
			return
		}
	}
	p.cfg.Counters.add("http_connect")
	splice(c, up)
}

// hopHeaders are removed from forwarded requests and responses (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *HTTPProxy) forward(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		p.fail(w, err)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	p.cfg.Counters.add("http_forward")
}

// limitListener closes connections over the bound at once, and remembers the open ones so
// that Close ends hijacked tunnels too.
type limitListener struct {
	net.Listener
	sem   chan struct{}
	cnt   *Counters
	conns syncSet
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			lc := &limitConn{Conn: c, l: l}
			l.conns.add(lc)
			return lc, nil
		default:
			l.cnt.add("conn_limit")
			c.Close()
		}
	}
}

func (l *limitListener) closeAll() { l.conns.closeAll() }

type limitConn struct {
	net.Conn
	l    *limitListener
	once onceFlag
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.once.first() {
		c.l.conns.remove(c)
		<-c.l.sem
	}
	return err
}

// CloseWrite half-closes when the underlying connection can.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
