package netproxy

// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929).
//
// One goroutine per control connection reads the greeting, the optional authentication and
// the request under the handshake deadline, then:
//
//   - CONNECT: resolves and dials the destination on the overlay and splices the two
//     connections (two copy goroutines);
//   - UDP ASSOCIATE: opens a UDP socket on the listener's loopback address for the client and
//     one overlay UDP socket; a goroutine reads the client's datagrams (header parsed by
//     ParseUDPHeader, fragments refused), another the overlay's replies, which go back to
//     the client with the header of their source. The association ends with the control
//     connection or after UDPIdle without traffic.
//
// BIND is answered "command not supported".

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// SOCKS5Config configures a SOCKS5 server.
type SOCKS5Config struct {
	// Network is the overlay; Resolve maps a request's host to an overlay address.
	Network Network
	Resolve Resolver
	// Username and Password, both set, require RFC 1929 authentication; both empty allow
	// clients without it.
	Username, Password string
	Limits             Limits
	Logger             *slog.Logger
	// Counters receives the refusals by reason (may be shared); nil: not counted.
	Counters *Counters
}

// SOCKS5 is a running SOCKS5 server.
type SOCKS5 struct {
	*server
	cfg SOCKS5Config
	lim Limits
	ip  netip.Addr // the listener's address: UDP associations bind there
}

// ServeSOCKS5 serves SOCKS5 on ln until Close. ln should be on loopback: the UDP relay of an
// association is opened on ln's address.
func ServeSOCKS5(ln net.Listener, cfg SOCKS5Config) (*SOCKS5, error) {
	if cfg.Network == nil || cfg.Resolve == nil {
		return nil, errors.New("netproxy: socks5: no network or resolver")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("netproxy: socks5: set both username and password, or neither")
	}
	if len(cfg.Username) > 255 || len(cfg.Password) > 255 {
		return nil, errors.New("netproxy: socks5: username and password must be at most 255 bytes (RFC 1929)")
	}
	s := &SOCKS5{cfg: cfg, lim: cfg.Limits.withDefaults()}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		s.ip = ta.AddrPort().Addr().Unmap()
	}
	if !s.ip.IsValid() || s.ip.IsUnspecified() {
		s.ip = netip.MustParseAddr("127.0.0.1")
	}
	s.server = newServer(ln, s.lim.MaxConns, cfg.Logger, cfg.Counters, s.handle)
	s.serve()
	return s, nil
}

func (s *SOCKS5) count(err error) {
	name := "socks5_other"
	switch {
	case errors.Is(err, errBadVersion):
		name = "socks5_bad_version"
	case errors.Is(err, errNoMethods), errors.Is(err, errShort):
		name = "socks5_malformed"
	case errors.Is(err, errBadAddrType):
		name = "socks5_bad_address_type"
	case errors.Is(err, errBadDomain):
		name = "socks5_bad_domain"
	case errors.Is(err, errBadAuth), errors.Is(err, errBadAuthFormat):
		name = "socks5_auth_failed"
	case errors.Is(err, errNoAcceptable):
		name = "socks5_no_acceptable_method"
	case errors.Is(err, errUnknownCmd):
		name = "socks5_unsupported_command"
	case errors.Is(err, errFragment):
		name = "socks5_udp_fragment"
	case errors.Is(err, errBadReserved):
		name = "socks5_udp_malformed"
	case errors.Is(err, ErrNotAllowed):
		name = "not_allowed"
	case errors.Is(err, ErrUnknownName):
		name = "unknown_name"
	}
	s.cnt.add(name)
}

// handle runs one control connection.
func (s *SOCKS5) handle(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(s.lim.Handshake))
	if err := s.negotiate(c); err != nil {
		s.count(err)
		return
	}
	var hdr [3]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		s.count(errShort)
		return
	}
	if hdr[0] != socksVersion {
		s.count(errBadVersion)
		return
	}
	dst, err := readAddr(c)
	if err != nil {
		s.count(err)
		rep := byte(repGeneralFailure)
		if errors.Is(err, errBadAddrType) {
			rep = repAddrUnsupported
		}
		writeReply(c, rep, Addr{})
		return
	}
	switch hdr[1] {
	case cmdConnect:
		s.connect(c, dst)
	case cmdUDPAssociate:
		s.associate(c, dst)
	default: // BIND and anything else
		s.count(errUnknownCmd)
		writeReply(c, repCommandUnsupported, Addr{})
	}
}

// negotiate reads the greeting, picks a method and runs RFC 1929 when it is picked.
func (s *SOCKS5) negotiate(c net.Conn) error {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return errShort
	}
	if hdr[0] != socksVersion {
		return errBadVersion
	}
	if hdr[1] == 0 {
		return errNoMethods
	}
	var methods [255]byte
	if _, err := io.ReadFull(c, methods[:hdr[1]]); err != nil {
		return errShort
	}
	want := byte(methodNone)
	if s.cfg.Username != "" {
		want = methodUserPass
	}
	found := false
	for _, m := range methods[:hdr[1]] {
		found = found || m == want
	}
	if !found {
		_, _ = c.Write([]byte{socksVersion, methodNoAccept})
		return errNoAcceptable
	}
	if _, err := c.Write([]byte{socksVersion, want}); err != nil {
		return err
	}
	if want == methodUserPass {
		return s.authenticate(c)
	}
	return nil
}

// authenticate runs the RFC 1929 sub-negotiation; a failure is answered and ends the
// connection, as the RFC requires.
func (s *SOCKS5) authenticate(c net.Conn) error {
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return errShort
	}
	if b[0] != authVersion || b[1] == 0 {
		_, _ = c.Write([]byte{authVersion, 1})
		return errBadAuthFormat
	}
	var buf [255]byte
	user := buf[:b[1]]
	if _, err := io.ReadFull(c, user); err != nil {
		return errShort
	}
	okUser := subtle.ConstantTimeCompare(user, []byte(s.cfg.Username))
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return errShort
	}
	pass := buf[:b[0]]
	if _, err := io.ReadFull(c, pass); err != nil {
		return errShort
	}
	okPass := subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password))
	if okUser&okPass != 1 {
		_, _ = c.Write([]byte{authVersion, 1})
		return errBadAuth
	}
	_, err := c.Write([]byte{authVersion, 0})
	return err
}

func writeReply(c net.Conn, rep byte, bnd Addr) {
	b := appendAddr([]byte{socksVersion, rep, 0}, bnd)
	_, _ = c.Write(b)
}

// replyFor maps a resolve or dial error to a SOCKS5 reply code.
func replyFor(err error) byte {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotAllowed):
		return repNotAllowed
	case errors.Is(err, ErrUnknownName):
		return repHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return repHostUnreachable
	case isRefused(err):
		return repRefused
	}
	return repNetworkUnreachable
}

// isRefused: the kernel says ECONNREFUSED, gVisor "connection was refused".
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused")
}

func (s *SOCKS5) connect(c net.Conn, dst Addr) {
	up, err := dialTCP(s.server.ctx, s.cfg.Network, s.cfg.Resolve, dst.Host(), dst.Port, s.lim.DialTimeout)
	if err != nil {
		s.count(err)
		s.server.log.Debug("socks5 connect", "dst", dst.String(), "err", err)
		writeReply(c, replyFor(err), Addr{})
		return
	}
	var bnd Addr
	if ta, ok := up.LocalAddr().(*net.TCPAddr); ok {
		bnd = Addr{IP: ta.AddrPort().Addr().Unmap(), Port: ta.AddrPort().Port()}
	}
	writeReply(c, repSucceeded, bnd)
	_ = c.SetDeadline(time.Time{})
	s.cnt.add("socks5_connect")
	splice(c, up)
}
