package catalog

// Consul's DNS names, answered beside weft's own (dns.go):
//
//	_NAME._TAG.service.DOMAIN     RFC 2782 SRV of the instances carrying TAG; _tcp means any
//	                              tag (Consul's rule), so _NAME._tcp is dns.go's own answer
//	D.C.B.A.in-addr.arpa          PTR of an overlay address in DNSConfig.Reverse: the
//	(and ip6.arpa)                member at it (NODE.node.DOMAIN) first, then the
//	                              services it runs (NAME.service.DOMAIN)
//	*.consul                      with DNSConfig.ConsulAlias, every name of DOMAIN under
//	                              "consul." too, answered with the names rewritten back
//
// Each is answered by rewriting the question into DOMAIN's names and the answer's owner
// names back, so every rule of dns.go (health, shuffling, NXDOMAIN and NODATA with the SOA)
// holds for them unchanged.

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// consulZone is the zone that tools hard-coding Consul's names ask.
const consulZone = "consul."

// reverseSource is what PTR answers read besides DNSSource; *Catalog implements it.
type reverseSource interface {
	Nodes() []string
	All() []Instance
}

var _ reverseSource = (*Catalog)(nil)

// answerConsul answers the Consul-style names; ok is false for every other name, which
// answer then handles as before.
func (s *DNSServer) answerConsul(req *dns.Msg, udp bool, src netip.Addr) (*dns.Msg, bool) {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case s.cfg.ConsulAlias && dns.IsSubDomain(consulZone, name) && !dns.IsSubDomain(s.domain, name):
		inner := strings.TrimSuffix(name, consulZone) + s.domain
		m := s.answerRewritten(req, inner, udp, src)
		renameAll(m, s.domain, consulZone)
		m.Question = req.Question
		return m, true
	case strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa."):
		addr, ok := reverseAddr(name)
		if !ok || !slices.ContainsFunc(s.cfg.Reverse, func(p netip.Prefix) bool { return p.Contains(addr) }) {
			return nil, false // not ours: forwarded or refused as before
		}
		return s.answerPTR(req, addr), true
	case dns.IsSubDomain(s.domain, name):
		labels := dns.SplitDomainName(name)
		rel := labels[:len(labels)-s.labels]
		if len(rel) == 3 && rel[2] == "service" && strings.HasPrefix(rel[0], "_") && strings.HasPrefix(rel[1], "_") && rel[1] != "_tcp" {
			if q.Qtype != dns.TypeSRV && q.Qtype != dns.TypeANY {
				// SRV-only name: answer NODATA when the tagged service exists, as _NAME._tcp does.
				probe := s.answerRewritten(srvQuestion(req), rel[1][1:]+"."+rel[0][1:]+".service."+s.domain, udp, src)
				m := new(dns.Msg).SetReply(req)
				m.Authoritative, m.RecursionAvailable = true, s.cfg.Upstream != ""
				m.Rcode, m.Ns = probe.Rcode, probe.Ns
				return m, true
			}
			m := s.answerRewritten(srvQuestion(req), rel[1][1:]+"."+rel[0][1:]+".service."+s.domain, udp, src)
			for _, rr := range m.Answer {
				rr.Header().Name = q.Name
			}
			m.Question = req.Question
			return m, true
		}
	}
	return nil, false
}

func srvQuestion(req *dns.Msg) *dns.Msg {
	c := req.Copy()
	c.Question[0].Qtype = dns.TypeSRV
	return c
}

// answerRewritten answers req as if it asked for name.
func (s *DNSServer) answerRewritten(req *dns.Msg, name string, udp bool, src netip.Addr) *dns.Msg {
	c := req.Copy()
	c.Question[0].Name = name
	return s.answer(c, udp, src)
}

// renameAll moves every owner name and SRV/PTR target under from to the same name under to.
func renameAll(m *dns.Msg, from, to string) {
	re := func(n string) string {
		if l := strings.ToLower(n); dns.IsSubDomain(from, l) {
			return strings.TrimSuffix(l, from) + to
		}
		return n
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			h.Name = re(h.Name)
			switch r := rr.(type) {
			case *dns.SRV:
				r.Target = re(r.Target)
			case *dns.PTR:
				r.Ptr = re(r.Ptr)
			case *dns.SOA:
				r.Ns, r.Mbox = re(r.Ns), re(r.Mbox)
			}
		}
	}
}

// answerPTR answers a reverse query for an overlay address.
func (s *DNSServer) answerPTR(req *dns.Msg, addr netip.Addr) *dns.Msg {
	q := req.Question[0]
	m := new(dns.Msg).SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, s.cfg.Upstream != ""
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return m.SetRcode(req, dns.RcodeRefused)
	}
	var targets []string
	if rs, ok := s.src.(reverseSource); ok {
		for _, n := range rs.Nodes() {
			if a, ok := s.src.NodeAddr(n); ok && a.Unmap() == addr {
				targets = append(targets, strings.ToLower(n)+".node."+s.domain)
			}
		}
		seen := map[string]bool{}
		for _, in := range rs.All() {
			if in.Addr.Unmap() == addr && !seen[in.Service.Name] {
				seen[in.Service.Name] = true
				targets = append(targets, in.Service.Name+".service."+s.domain)
			}
		}
	}
	targets = slices.DeleteFunc(targets, func(t string) bool { _, ok := dns.IsDomainName(t); return !ok })
	switch {
	case len(targets) == 0:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa()}
	case q.Qtype != dns.TypePTR && q.Qtype != dns.TypeANY:
		m.Ns = []dns.RR{s.soa()}
	default:
		for _, t := range targets {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: s.ttl}, Ptr: t})
		}
	}
	return m
}

// reverseAddr parses D.C.B.A.in-addr.arpa. or the 32 nibbles of ip6.arpa. (lower case,
// fully qualified) into the address; a partial or malformed name is not an address.
func reverseAddr(name string) (netip.Addr, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 8)
			if err != nil || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		parts := strings.Split(v6, ".")
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, p := range parts {
			if len(p) != 1 {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(p, 16, 8)
			if err != nil || p != strings.ToLower(p) {
				return netip.Addr{}, false
			}
			j := 31 - i
			if j%2 == 0 {
				b[j/2] |= byte(n) << 4
			} else {
				b[j/2] |= byte(n)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// reverseName is the PTR owner name of addr (the inverse of reverseAddr).
func reverseName(addr netip.Addr) string {
	n, _ := dns.ReverseAddr(addr.String())
	return n
}
