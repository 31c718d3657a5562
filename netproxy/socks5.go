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
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SOCKS5 protocol numbers.
const (
	socksVersion = 5
	authVersion  = 1 // RFC 1929 sub-negotiation version

	methodNone     = 0x00
	methodUserPass = 0x02
	methodNoAccept = 0xff

	cmdConnect      = 1
	cmdBind         = 2
	cmdUDPAssociate = 3

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4

	repSucceeded          = 0
	repGeneralFailure     = 1
	repNotAllowed         = 2
	repNetworkUnreachable = 3
	repHostUnreachable    = 4
	repRefused            = 5
	repCommandUnsupported = 7
	repAddrUnsupported    = 8
)

// maxUDPDatagram is the largest UDP payload relayed (IPv4's limit less headers).
const maxUDPDatagram = 65507

// Errors of the SOCKS5 parsers; each is also a counter name.
var (
	errBadVersion    = errors.New("socks5: bad version")
	errNoMethods     = errors.New("socks5: no methods")
	errBadAddrType   = errors.New("socks5: unsupported address type")
	errBadDomain     = errors.New("socks5: bad domain name")
	errShort         = errors.New("socks5: short message")
	errFragment      = errors.New("socks5: fragmented datagram")
	errBadReserved   = errors.New("socks5: reserved field not zero")
	errBadAuth       = errors.New("socks5: bad authentication")
	errUnknownCmd    = errors.New("socks5: unknown command")
	errNoAcceptable  = errors.New("socks5: no acceptable method")
	errBadAuthFormat = errors.New("socks5: malformed authentication")
)

// Addr is a SOCKS5 address: a name or an IP, and a port.
type Addr struct {
	Name string     // set for ATYP 3 (domain)
	IP   netip.Addr // set for ATYP 1 and 4
	Port uint16
}

// Host is the name or the address as text.
func (a Addr) Host() string {
	if a.Name != "" {
		return a.Name
	}
	return a.IP.String()
}

func (a Addr) String() string { return net.JoinHostPort(a.Host(), strconv.Itoa(int(a.Port))) }

// appendAddr appends ATYP, address and port.
func appendAddr(b []byte, a Addr) []byte {
	switch {
	case a.Name != "":
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	case a.IP.Is4():
		b = append(b, atypIPv4)
		b = append(b, a.IP.AsSlice()...)
	case a.IP.IsValid():
		b = append(b, atypIPv6)
		b = append(b, a.IP.AsSlice()...)
	default:
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

// validName accepts a host name of letters, digits, '-', '_' and '.' (1-255 bytes): SOCKS5
// carries raw bytes, and a name goes on into a resolver and logs.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// parseAddr parses ATYP, address and port at the start of b and returns the rest.
func parseAddr(b []byte) (Addr, []byte, error) {
	if len(b) < 1 {
		return Addr{}, nil, errShort
	}
	var a Addr
	switch b[0] {
	case atypIPv4:
		if len(b) < 1+4+2 {
			return Addr{}, nil, errShort
		}
		a.IP = netip.AddrFrom4([4]byte(b[1:5]))
		b = b[5:]
	case atypIPv6:
		if len(b) < 1+16+2 {
			return Addr{}, nil, errShort
		}
		a.IP = netip.AddrFrom16([16]byte(b[1:17]))
		b = b[17:]
	case atypDomain:
		if len(b) < 2 {
			return Addr{}, nil, errShort
		}
		n := int(b[1])
		if len(b) < 2+n+2 {
			return Addr{}, nil, errShort
		}
		a.Name = string(b[2 : 2+n])
		if !validName(a.Name) {
			return Addr{}, nil, errBadDomain
		}
		b = b[2+n:]
	default:
		return Addr{}, nil, errBadAddrType
	}
	a.Port = binary.BigEndian.Uint16(b)
	return a, b[2:], nil
}

// readAddr reads ATYP, address and port from r.
func readAddr(r io.Reader) (Addr, error) {
	var buf [2 + 255 + 2]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return Addr{}, errShort
	}
	var need int
	switch buf[0] {
	case atypIPv4:
		need = 4 + 2
	case atypIPv6:
		need = 16 + 2
	case atypDomain:
		if _, err := io.ReadFull(r, buf[1:2]); err != nil {
			return Addr{}, errShort
		}
		if buf[1] == 0 {
			return Addr{}, errBadDomain
		}
		if _, err := io.ReadFull(r, buf[2:2+int(buf[1])+2]); err != nil {
			return Addr{}, errShort
		}
		a, _, err := parseAddr(buf[:2+int(buf[1])+2])
		return a, err
	default:
		return Addr{}, errBadAddrType
	}
	if _, err := io.ReadFull(r, buf[1:1+need]); err != nil {
		return Addr{}, errShort
	}
	a, _, err := parseAddr(buf[:1+need])
	return a, err
}

// UDPHeader is the header of a SOCKS5 UDP datagram (RFC 1928 section 7).
type UDPHeader struct {
	Frag byte
	Addr Addr
}

// ParseUDPHeader parses a SOCKS5 UDP datagram into its header and payload (borrowed from b).
// A fragment number other than 0 is errFragment: fragmentation is optional in RFC 1928 and
// this relay drops such datagrams, as the RFC allows.
func ParseUDPHeader(b []byte) (UDPHeader, []byte, error) {
	if len(b) < 3 {
		return UDPHeader{}, nil, errShort
	}
	if b[0] != 0 || b[1] != 0 {
		return UDPHeader{}, nil, errBadReserved
	}
	h := UDPHeader{Frag: b[2]}
	if h.Frag != 0 {
		return h, nil, errFragment
	}
	a, rest, err := parseAddr(b[3:])
	if err != nil {
		return UDPHeader{}, nil, err
	}
	h.Addr = a
	return h, rest, nil
}

// AppendUDPHeader appends the header of a datagram from or to a.
func AppendUDPHeader(b []byte, a Addr) []byte {
	return appendAddr(append(b, 0, 0, 0), a)
}

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

// associate runs a UDP association until the control connection closes or goes idle.
// want is the client's announced source (zero: unknown, learned from the first datagram).
func (s *SOCKS5) associate(c net.Conn, want Addr) {
	clientIP := netip.Addr{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		clientIP = ta.AddrPort().Addr().Unmap()
	}
	local, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.ip, 0)))
	if err != nil {
		s.count(err)
		writeReply(c, repGeneralFailure, Addr{})
		return
	}
	defer local.Close()
	overlay, err := s.cfg.Network.ListenUDP()
	if err != nil {
		s.count(err)
		writeReply(c, repGeneralFailure, Addr{})
		return
	}
	defer overlay.Close()
	la := local.LocalAddr().(*net.UDPAddr).AddrPort()
	writeReply(c, repSucceeded, Addr{IP: la.Addr().Unmap(), Port: la.Port()})
	_ = c.SetDeadline(time.Time{})
	s.cnt.add("socks5_udp_associate")

	a := &association{s: s, local: local, overlay: overlay, clientIP: clientIP,
		peers: map[netip.AddrPort]Addr{}}
	if want.Name == "" && want.IP.IsValid() && !want.IP.IsUnspecified() {
		a.clientIP = want.IP.Unmap()
	}
	if want.Port != 0 && want.Name == "" {
		a.wantPort = want.Port
	}
	a.touch()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.fromClient() }()
	go func() { defer wg.Done(); a.fromOverlay() }()
	go func() {
		defer wg.Done()
		// The association lives as long as its control connection (RFC 1928 section 7):
		// any byte or EOF ends it; so does idleness.
		var b [1]byte
		go func() {
			t := time.NewTicker(s.lim.UDPIdle / 4)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					if a.idle() > s.lim.UDPIdle {
						c.Close()
						return
					}
				}
			}
		}()
		_, _ = c.Read(b[:])
		close(done)
		local.Close()
		overlay.Close()
	}()
	wg.Wait()
}

// association is one UDP ASSOCIATE: a client socket, an overlay socket and the overlay
// peers the client has sent to (replies come only from those).
type association struct {
	s        *SOCKS5
	local    *net.UDPConn
	overlay  net.PacketConn
	clientIP netip.Addr
	wantPort uint16

	mu     sync.Mutex
	client netip.AddrPort // learned from the first valid datagram
	peers  map[netip.AddrPort]Addr

	lastUse
}

func (a *association) fromClient() {
	buf := make([]byte, 65535)
	for {
		n, src, err := a.local.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if a.clientIP.IsValid() && src.Addr() != a.clientIP || a.wantPort != 0 && src.Port() != a.wantPort {
			a.s.cnt.add("socks5_udp_foreign_source")
			continue
		}
		a.mu.Lock()
		if !a.client.IsValid() {
			a.client = src
		}
		fixed := a.client
		a.mu.Unlock()
		if src != fixed {
			a.s.cnt.add("socks5_udp_foreign_source")
			continue
		}
		h, payload, err := ParseUDPHeader(buf[:n])
		if err != nil {
			a.s.count(err)
			continue
		}
		ctx, cancel := context.WithTimeout(a.s.server.ctx, a.s.lim.DialTimeout)
		ip, err := a.s.cfg.Resolve(ctx, h.Addr.Host())
		cancel()
		if err != nil {
			a.s.count(err)
			continue
		}
		dst := netip.AddrPortFrom(ip, h.Addr.Port)
		a.mu.Lock()
		_, known := a.peers[dst]
		if !known && len(a.peers) >= a.s.lim.MaxUDPSessions {
			a.mu.Unlock()
			a.s.cnt.add("udp_session_limit")
			continue
		}
		a.peers[dst] = h.Addr
		a.mu.Unlock()
		a.touch()
		if _, err := a.overlay.WriteTo(payload, net.UDPAddrFromAddrPort(dst)); err != nil {
			a.s.cnt.add("udp_send_error")
			continue
		}
		a.s.cnt.add("socks5_udp_out")
	}
}

func (a *association) fromOverlay() {
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535+262)
	for {
		n, from, err := a.overlay.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		a.mu.Lock()
		name, known := a.peers[src]
		client := a.client
		a.mu.Unlock()
		if !known || !client.IsValid() {
			// Not touched: unsolicited datagrams must not keep the association alive.
			a.s.cnt.add("socks5_udp_unsolicited")
			continue
		}
		a.touch()
		// Answer with the address the client asked for, so that a client that sent to a
		// name matches the reply.
		if name.Name == "" {
			name = Addr{IP: src.Addr(), Port: src.Port()}
		}
		out = AppendUDPHeader(out[:0], name)
		if len(out)+n > maxUDPDatagram {
			a.s.cnt.add("socks5_udp_too_big")
			continue
		}
		out = append(out, buf[:n]...)
		if _, err := a.local.WriteToUDPAddrPort(out, client); err != nil {
			a.s.cnt.add("udp_send_error")
			continue
		}
		a.s.cnt.add("socks5_udp_in")
	}
}
