package catalog

// DNS interface to the catalog, answered by every agent from its own view:
//
//	NAME.service.DOMAIN          A / AAAA of passing instances, shuffled; SRV too
//	TAG.NAME.service.DOMAIN      the same, only instances carrying TAG
//	_NAME._tcp.service.DOMAIN    SRV: priority 1, the service weight, its port, target
//	                             NODE.node.DOMAIN; the targets' A/AAAA in the additional section
//	NODE.node.DOMAIN             A / AAAA of a member
//	DOMAIN                       SOA
//
// A name in the domain with no records is NXDOMAIN (a service without passing instances
// too); a known name asked for a type it lacks is NOERROR without answers (NODATA); both
// carry the SOA in the authority section so resolvers cache them for the TTL. Names
// outside the domain are REFUSED, or forwarded to Upstream when one is set.
//
// Forwarding is a recursive resolver's service, so it is offered only to this host and the
// overlay: a query from a loopback address or from inside ForwardFrom (the agent passes the
// cluster CIDR) is forwarded, any other source gets REFUSED (an open resolver on an underlay
// address would serve amplification attacks). At most MaxForwards queries are upstream at
// once, through one reused miekg/dns Client per transport; a query past the bound gets
// SERVFAIL at once and is counted, so a flood costs neither sockets nor goroutines that wait.
//
// Each listen address is served on UDP and TCP by miekg/dns servers; the handler runs on
// miekg's per-request goroutines and only reads the catalog.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DNSConfig configures NewDNSServer.
type DNSConfig struct {
	// Listen addresses (host:port); each is served on UDP and TCP. Port 0 picks a free
	// port, the same for both (see DNSServer.Addrs).
	Listen []string
	// Domain is the zone answered, e.g. "weft." (a trailing dot is added).
	Domain string
	// TTL of every answer, and the negative-caching TTL of the SOA.
	TTL time.Duration
	// Upstream (host:port) receives queries outside Domain; empty: they are REFUSED.
	Upstream string
	// UpstreamTimeout bounds one forwarded query; 0 means 2s.
	UpstreamTimeout time.Duration
	// ForwardFrom are the sources besides loopback whose queries outside Domain are
	// forwarded (the overlay's prefixes); others get REFUSED. An IPv4-mapped source counts
	// as its IPv4 address.
	ForwardFrom []netip.Prefix
	// MaxForwards bounds the queries upstream at once; past it a query gets SERVFAIL.
	// 0 means DefaultMaxForwards.
	MaxForwards int
	// Logger; nil discards.
	Logger *slog.Logger
	// ConsulAlias answers every name of Domain under "consul." too (dns_consul.go).
	ConsulAlias bool
	// Clients answers NAME.client.DOMAIN (the agent's stock WireGuard clients); nil: none.
	Clients func(name string) (netip.Addr, bool)
	// Reverse are the prefixes whose PTR names are answered (the cluster CIDR).
	Reverse []netip.Prefix
}

// DefaultDNSConfig: loopback only (the agent adds its overlay address); a short TTL
// because health changes must reach clients within seconds.
func DefaultDNSConfig() DNSConfig {
	return DNSConfig{Listen: []string{"127.0.0.1:53"}, Domain: "weft.", TTL: 5 * time.Second}
}

// DefaultMaxForwards: 32 queries in flight at a 2 s timeout is 16 queries per second even
// against a dead upstream, and hundreds per second against a live one, far more than a
// host's stub resolvers ask for names outside the overlay; a flood beyond it is SERVFAIL.
const DefaultMaxForwards = 32

// DNSStats are the DNS server's forwarding counters.
type DNSStats struct {
	Forwarded       uint64 // queries sent upstream and answered
	ForwardFailed   uint64 // upstream errors and timeouts (SERVFAIL)
	ForwardBusy     uint64 // past MaxForwards (SERVFAIL without asking upstream)
	ForwardRefused  uint64 // from a source that is neither loopback nor in ForwardFrom (REFUSED)
	ForwardInFlight int    // queries upstream now
}

// DNSSource is what the DNS server reads; *Catalog implements it.
type DNSSource interface {
	Instances(name string, onlyPassing bool) []Instance
	NodeAddr(node string) (netip.Addr, bool)
	Index() uint64
}

var _ DNSSource = (*Catalog)(nil)

// DNSServer answers the catalog over DNS.
type DNSServer struct {
	cfg    DNSConfig
	src    DNSSource
	log    *slog.Logger
	domain string
	labels int // labels in domain
	ttl    uint32

	udp, tcp *dns.Client   // upstream clients, shared by all queries
	fwdSem   chan struct{} // one token per query upstream

	nForwarded, nFwdFailed, nFwdBusy, nFwdRefused atomic.Uint64

	mu      sync.Mutex
	servers []*dns.Server
	addrs   []netip.AddrPort
	wg      sync.WaitGroup
}

// NewDNSServer validates cfg; Start binds and serves.
func NewDNSServer(cfg DNSConfig, src DNSSource) (*DNSServer, error) {
	if src == nil {
		return nil, errors.New("catalog: dns: no catalog")
	}
	if cfg.Domain == "" {
		cfg.Domain = "weft."
	}
	domain := dns.Fqdn(strings.ToLower(cfg.Domain))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("catalog: dns: bad domain %q", cfg.Domain)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("catalog: dns: ttl %v < 0", cfg.TTL)
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("catalog: dns: no listen address")
	}
	if cfg.Upstream != "" {
		if _, _, err := net.SplitHostPort(cfg.Upstream); err != nil {
			return nil, fmt.Errorf("catalog: dns: upstream %q: want host:port", cfg.Upstream)
		}
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	if cfg.MaxForwards == 0 {
		cfg.MaxForwards = DefaultMaxForwards
	}
	if cfg.MaxForwards < 0 {
		return nil, fmt.Errorf("catalog: dns: max forwards %d < 0", cfg.MaxForwards)
	}
	for _, p := range cfg.ForwardFrom {
		if !p.IsValid() {
			return nil, fmt.Errorf("catalog: dns: forward-from prefix %v is not valid", p)
		}
	}
	s := &DNSServer{cfg: cfg, src: src, log: cfg.Logger, domain: domain,
		labels: dns.CountLabel(domain), ttl: uint32(cfg.TTL / time.Second),
		udp:    &dns.Client{Net: "udp", Timeout: cfg.UpstreamTimeout},
		tcp:    &dns.Client{Net: "tcp", Timeout: cfg.UpstreamTimeout},
		fwdSem: make(chan struct{}, cfg.MaxForwards)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Start binds every listen address on UDP and TCP and serves until Shutdown. On error
// nothing stays bound.
func (s *DNSServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.servers) > 0 {
		return errors.New("catalog: dns: already started")
	}
	var pcs []net.PacketConn
	var lns []net.Listener
	closeAll := func() {
		for _, pc := range pcs {
			pc.Close()
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, addr := range s.cfg.Listen {
		pc, ln, err := listenBoth(addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("catalog: dns: listen %s: %w", addr, err)
		}
		pcs, lns = append(pcs, pc), append(lns, ln)
		s.addrs = append(s.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	for i := range pcs {
		for _, srv := range []*dns.Server{{PacketConn: pcs[i], Handler: s}, {Listener: lns[i], Handler: s}} {
			started := make(chan struct{})
			errc := make(chan error, 1)
			srv.NotifyStartedFunc = func() { close(started) }
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				errc <- srv.ActivateAndServe()
			}()
			select {
			case <-started:
				s.servers = append(s.servers, srv)
			case err := <-errc:
				s.shutdownLocked(context.Background())
				closeAll()
				return fmt.Errorf("catalog: dns: serve: %w", err)
			}
		}
	}
	s.log.Info("dns listening", "addrs", s.addrs, "domain", s.domain)
	return nil
}

// listenBoth binds addr on UDP and TCP; with port 0 it finds a port free for both.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt == 20 {
			return nil, nil, err
		}
	}
}

// Addrs returns the bound addresses (UDP and TCP share each port).
func (s *DNSServer) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.addrs...)
}

// Shutdown stops every server, waiting for in-flight queries until ctx ends.
func (s *DNSServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdownLocked(ctx)
}

func (s *DNSServer) shutdownLocked(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.servers = nil
	s.addrs = nil
	s.wg.Wait()
	return errors.Join(errs...)
}

// Stats returns the forwarding counters.
func (s *DNSServer) Stats() DNSStats {
	return DNSStats{Forwarded: s.nForwarded.Load(), ForwardFailed: s.nFwdFailed.Load(),
		ForwardBusy: s.nFwdBusy.Load(), ForwardRefused: s.nFwdRefused.Load(), ForwardInFlight: len(s.fwdSem)}
}

// ServeDNS implements dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	var src netip.Addr
	udp := false
	switch ra := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		udp = true
		src = ra.AddrPort().Addr()
	case *net.TCPAddr:
		src = ra.AddrPort().Addr()
	}
	m := s.answer(req, udp, src)
	if udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: write", "err", err)
	}
}

// answer builds the response to req from src (invalid: unknown, never forwarded).
func (s *DNSServer) answer(req *dns.Msg, udp bool, src netip.Addr) *dns.Msg {
	m := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return m.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return m.SetRcodeFormatError(req)
	}
	if cm, ok := s.answerConsul(req, udp, src); ok {
		return cm
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if !dns.IsSubDomain(s.domain, name) {
		return s.forward(req, udp, src)
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = s.cfg.Upstream != ""
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return m.SetRcode(req, dns.RcodeRefused)
	}
	labels := dns.SplitDomainName(name)
	rel := labels[:len(labels)-s.labels]

	var found bool
	switch {
	case len(rel) == 0:
		found = true
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, s.soa())
		}
	case len(rel) >= 2 && rel[len(rel)-1] == "node":
		// Node names may hold dots (a host's FQDN): all labels before "node".
		addr, ok := s.src.NodeAddr(strings.Join(rel[:len(rel)-1], "."))
		if ok {
			found = true
			m.Answer = appendAddr(m.Answer, q.Name, q.Qtype, addr, s.ttl)
		}
	case len(rel) == 2 && rel[1] == "client" && s.cfg.Clients != nil:
		if addr, ok := s.cfg.Clients(rel[0]); ok {
			found = true
			m.Answer = appendAddr(m.Answer, q.Name, q.Qtype, addr, s.ttl)
		}
	case len(rel) >= 2 && len(rel) <= 3 && rel[len(rel)-1] == "service":
		found = s.answerService(m, q, rel)
	}
	switch {
	case !found:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa()}
	case len(m.Answer) == 0:
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// answerService fills m for NAME.service, TAG.NAME.service and _NAME._tcp.service.
func (s *DNSServer) answerService(m *dns.Msg, q dns.Question, rel []string) bool {
	var svc, tag string
	srvOnly := false
	switch {
	case len(rel) == 2:
		svc = rel[0]
	case strings.HasPrefix(rel[0], "_") && rel[1] == "_tcp":
		svc, srvOnly = rel[0][1:], true
	case !strings.HasPrefix(rel[0], "_") && !strings.HasPrefix(rel[1], "_"):
		tag, svc = rel[0], rel[1]
	default:
		return false
	}
	var ins []Instance
	for _, in := range s.src.Instances(svc, true) {
		if in.Addr.IsValid() && (tag == "" || hasTagFold(in.Service.Tags, tag)) {
			ins = append(ins, in)
		}
	}
	if len(ins) == 0 {
		return false
	}
	rand.Shuffle(len(ins), func(i, j int) { ins[i], ins[j] = ins[j], ins[i] })
	switch {
	case q.Qtype == dns.TypeSRV:
		seen := make(map[string]bool)
		for _, in := range ins {
			target := dns.Fqdn(strings.ToLower(in.Node) + ".node." + s.domain)
			if _, ok := dns.IsDomainName(target); !ok {
				continue
			}
			m.Answer = append(m.Answer, &dns.SRV{
				Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: s.ttl},
				Priority: 1, Weight: in.Service.Weight, Port: in.Service.Port, Target: target,
			})
			if !seen[target] {
				seen[target] = true
				m.Extra = appendAddr(m.Extra, target, dns.TypeANY, in.Addr, s.ttl)
			}
		}
	case srvOnly:
	default:
		for _, in := range ins {
			m.Answer = appendAddr(m.Answer, q.Name, q.Qtype, in.Addr, s.ttl)
		}
	}
	return true
}

func hasTagFold(tags []string, t string) bool {
	for _, x := range tags {
		if strings.EqualFold(x, t) {
			return true
		}
	}
	return false
}

// appendAddr appends addr as an A or AAAA record if qtype asks for that family.
func appendAddr(rrs []dns.RR, name string, qtype uint16, addr netip.Addr, ttl uint32) []dns.RR {
	addr = addr.Unmap()
	switch {
	case addr.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		a := addr.As4()
		return append(rrs, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(a[:])})
	case addr.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		a := addr.As16()
		return append(rrs, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(a[:])})
	}
	return rrs
}

func (s *DNSServer) soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns:      "ns." + s.domain,
		Mbox:    "hostmaster." + s.domain,
		Serial:  uint32(s.src.Index()),
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: s.ttl,
	}
}

// mayForward reports whether queries from src may be forwarded: this host (loopback) or
// the overlay (ForwardFrom).
func (s *DNSServer) mayForward(src netip.Addr) bool {
	return loopbackOrIn(src.Unmap(), s.cfg.ForwardFrom)
}

// forward sends a query outside the domain upstream, or refuses it.
func (s *DNSServer) forward(req *dns.Msg, udp bool, src netip.Addr) *dns.Msg {
	if s.cfg.Upstream == "" {
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	if !s.mayForward(src) {
		s.nFwdRefused.Add(1)
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	select {
	case s.fwdSem <- struct{}{}:
	default:
		s.nFwdBusy.Add(1)
		return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	}
	defer func() { <-s.fwdSem }()
	c := s.tcp
	if udp {
		c = s.udp
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.UpstreamTimeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, req, s.cfg.Upstream)
	if err != nil {
		s.nFwdFailed.Add(1)
		s.log.Debug("dns: upstream", "upstream", s.cfg.Upstream, "err", err)
		return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	}
	s.nForwarded.Add(1)
	resp.Id = req.Id
	return resp
}
