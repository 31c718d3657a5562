package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
)

// Endpoint is who sits at an address: the host (node name) and its groups. For the
// sender of an inbound packet it comes from the caller (the peer's certificate), never
// from the packet or the Resolver.
type Endpoint struct {
	Host   string
	Groups []string
}

// Instance is one place a service is offered. Port 0 means every port; Proto 0 every
// protocol.
type Instance struct {
	Addr  netip.Addr
	Port  uint16
	Proto Proto
}

// Resolver is the policy's view of the cluster, implemented by the agent over its
// catalog and membership.
//
// Endpoint is asked once per new flow, from the datapath goroutines: it must be safe for
// concurrent use, must not block, and should not allocate; the returned Groups slice is
// borrowed for the call and not retained. It answers for local addresses (this host and
// what it routes for) and remote ones alike; ok false means an unknown address, which only
// any, cidrs and services selectors can match.
//
// Service is asked by Compile and Rebind only, once per service name in the document; the
// policy copies what it needs.
type Resolver interface {
	Endpoint(addr netip.Addr) (ep Endpoint, ok bool)
	Service(name string) []Instance
}

// Set is a compiled, immutable policy. An Engine reads it through an atomic pointer; a
// new Set (Compile, Rebind) replaces it with Engine.Load. Its counters belong to the
// document: a Rebind shares them, a Compile of a new document starts at zero.
type Set struct {
	doc      *Document
	gen      uint64
	deny     bool // default deny
	rules    []crule
	res      Resolver
	counters *counters
}

type crule struct {
	name string
	deny bool
	from csel
	to   csel
	l4   l4Match
}

type csel struct {
	any      bool
	groups   []string
	hosts    []string
	prefixes []netip.Prefix
	services []string     // names, kept for Rebind
	svcAddrs []netip.Addr // from side: the addresses of the services' instances, sorted
	svcInst  []Instance   // to side: the instances themselves
}

type ruleCounter struct {
	hits  atomic.Uint64
	drops atomic.Uint64
	_     [48]byte // one cache line per rule: datapath goroutines count concurrently
}

type counters struct {
	rules []ruleCounter
	def   ruleCounter
}

// generation numbers every Set; a flow validated under another generation is re-checked.
var generation atomic.Uint64

// Compile validates doc and compiles it against r. A nil doc is the empty policy (allow
// everything). Compile does not retain doc's slices; it keeps r for Endpoint lookups.
func Compile(doc *Document, r Resolver) (*Set, error) {
	if doc == nil {
		doc = &Document{}
	}
	if r == nil {
		return nil, fmt.Errorf("policy.Compile: nil Resolver")
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	s := &Set{
		doc:      doc,
		gen:      generation.Add(1),
		deny:     doc.Default == ActionDeny,
		rules:    make([]crule, len(doc.Rules)),
		res:      r,
		counters: &counters{rules: make([]ruleCounter, len(doc.Rules))},
	}
	for i := range doc.Rules {
		dr := &doc.Rules[i]
		cr := &s.rules[i]
		cr.name = dr.Name
		cr.deny = dr.Action == ActionDeny
		cr.from = compileSelector(&dr.From)
		cr.to = compileSelector(&dr.To)
		proto, ports := dr.Proto, dr.Ports
		if dr.To.Proto != "" || len(dr.To.Ports) > 0 {
			proto, ports = dr.To.Proto, dr.To.Ports
		}
		cr.l4, _ = compilePorts(proto, ports) // validated above
	}
	s.resolveServices()
	return s, nil
}

func compileSelector(d *Selector) csel {
	c := csel{
		any:      d.Any,
		groups:   slices.Clone(d.Groups),
		hosts:    slices.Clone(d.Hosts),
		services: slices.Clone(d.Services),
	}
	for _, s := range d.CIDRs {
		p, _ := parseCIDR(s) // validated
		c.prefixes = append(c.prefixes, p)
	}
	return c
}

// Rebind re-resolves the services against the Resolver's current catalog and returns a
// new Set of a new generation sharing the rules and counters; the old Set stays valid
// for the goroutines still reading it. Cost: one Service call per service name and a
// copy of the instances, no re-parse. Call it when the catalog or membership changes,
// then Engine.Load the result; flows are re-checked lazily on their next packet.
func (s *Set) Rebind() *Set {
	n := &Set{doc: s.doc, gen: generation.Add(1), deny: s.deny, res: s.res, counters: s.counters}
	n.rules = slices.Clone(s.rules)
	n.resolveServices()
	return n
}

func (s *Set) resolveServices() {
	for i := range s.rules {
		cr := &s.rules[i]
		cr.from.svcAddrs, cr.from.svcInst = nil, nil
		cr.to.svcAddrs, cr.to.svcInst = nil, nil
		for _, name := range cr.from.services {
			for _, in := range s.res.Service(name) {
				cr.from.svcAddrs = append(cr.from.svcAddrs, in.Addr.Unmap())
			}
		}
		slices.SortFunc(cr.from.svcAddrs, func(a, b netip.Addr) int { return a.Compare(b) })
		cr.from.svcAddrs = slices.Compact(cr.from.svcAddrs)
		for _, name := range cr.to.services {
			for _, in := range s.res.Service(name) {
				in.Addr = in.Addr.Unmap()
				cr.to.svcInst = append(cr.to.svcInst, in)
			}
		}
	}
}

// Document returns the document the Set was compiled from. Do not modify it.
func (s *Set) Document() *Document { return s.doc }

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// endpoint is one end of a flow as the rules see it.
type endpoint struct {
	addr  netip.Addr
	host  string
	group []string
}

func (c *csel) matches(ep *endpoint, to bool, class Proto, dport uint16) bool {
	if c.any {
		return true
	}
	if len(c.groups) > 0 && !anyIn(c.groups, ep.group) {
		return false
	}
	if len(c.hosts) > 0 && (ep.host == "" || !slices.Contains(c.hosts, ep.host)) {
		return false
	}
	if len(c.prefixes) > 0 {
		hit := false
		for _, p := range c.prefixes {
			if p.Contains(ep.addr) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	if len(c.services) > 0 {
		if !to {
			_, found := slices.BinarySearchFunc(c.svcAddrs, ep.addr, func(a, b netip.Addr) int { return a.Compare(b) })
			return found
		}
		for _, in := range c.svcInst {
			if in.Addr != ep.addr {
				continue
			}
			if in.Port != 0 && (class&(ProtoTCP|ProtoUDP) == 0 || in.Port != dport) {
				continue
			}
			if in.Proto != 0 && in.Proto&class == 0 {
				continue
			}
			return true
		}
		return false
	}
	return true
}

func anyIn(want, have []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// decide walks the rules in order: the first whose from, to and proto/ports match decides.
// rule is -1 when the default decided.
func (s *Set) decide(src, dst *endpoint, class Proto, dport uint16) (rule int, deny bool) {
	for i := range s.rules {
		r := &s.rules[i]
		if r.l4.matches(class, dport) && r.from.matches(src, false, class, dport) && r.to.matches(dst, true, class, dport) {
			return i, r.deny
		}
	}
	return -1, s.deny
}

// lookup fills ep from the Resolver.
func (s *Set) lookup(addr netip.Addr, ep *endpoint) {
	ep.addr = addr
	if e, ok := s.res.Endpoint(addr); ok {
		ep.host, ep.group = e.Host, e.Groups
	}
}

// Test evaluates a would-be flow from one address to another without touching the flow
// table or the counters, both ends' identities from the Resolver: the answer of
// `weft policy test`. port is ignored for ProtoICMP and ProtoOther.
func (s *Set) Test(from, to netip.Addr, port uint16, proto Proto) Verdict {
	var src, dst endpoint
	s.lookup(from.Unmap(), &src)
	s.lookup(to.Unmap(), &dst)
	rule, deny := s.decide(&src, &dst, proto, port)
	return s.verdict(rule, deny)
}

func (s *Set) verdict(rule int, deny bool) Verdict {
	switch {
	case deny:
		return Verdict{Decision: Denied, Rule: int32(rule), Reason: ReasonPolicyDenied}
	case rule >= 0:
		return Verdict{Decision: AllowedByRule, Rule: int32(rule)}
	}
	return Verdict{Decision: AllowedByDefault, Rule: -1}
}

// count records a rule decision: hits are flows a rule admitted, drops packets it refused.
func (s *Set) count(rule int, deny bool) {
	c := &s.counters.def
	if rule >= 0 {
		c = &s.counters.rules[rule]
	}
	if deny {
		c.drops.Add(1)
	} else {
		c.hits.Add(1)
	}
}

// Explain says in words who decided v under this Set, for `weft policy test` and logs.
func (s *Set) Explain(v Verdict) string {
	var b strings.Builder
	if v.Allowed() {
		b.WriteString("allow")
	} else {
		b.WriteString("deny")
	}
	switch {
	case v.Decision == Denied && v.Reason != ReasonPolicyDenied:
		b.WriteString(": " + v.Reason.String())
	case v.Rule >= 0 && int(v.Rule) < len(s.rules):
		fmt.Fprintf(&b, " by rule %d", v.Rule)
		if n := s.rules[v.Rule].name; n != "" {
			fmt.Fprintf(&b, " %q", n)
		}
		if v.Decision == AllowedByFlow {
			b.WriteString(" (established flow)")
		}
	case v.Decision == AllowedByFlow:
		b.WriteString(" by an established flow")
	default:
		b.WriteString(" by default (default: ")
		if s.deny {
			b.WriteString("deny)")
		} else {
			b.WriteString("allow)")
		}
	}
	return b.String()
}

// RuleStats is one line of `weft policy show`.
type RuleStats struct {
	Index  int // -1 for the default
	Name   string
	Action Action
	Rule   string // the rule in words: "from groups=web to services=db"
	Hits   uint64 // flows admitted
	Drops  uint64 // packets refused
}

// Stats lists the rules with their counters, then the default (Index -1).
func (s *Set) Stats() []RuleStats {
	out := make([]RuleStats, 0, len(s.rules)+1)
	for i := range s.doc.Rules {
		dr := &s.doc.Rules[i]
		act := dr.Action
		if act == "" {
			act = ActionAllow
		}
		out = append(out, RuleStats{
			Index: i, Name: dr.Name, Action: act,
			Rule: "from " + describe(&dr.From) + " to " + describe(&dr.To) + describeL4(dr.Proto, dr.Ports),
			Hits: s.counters.rules[i].hits.Load(), Drops: s.counters.rules[i].drops.Load(),
		})
	}
	def := ActionAllow
	if s.deny {
		def = ActionDeny
	}
	out = append(out, RuleStats{Index: -1, Name: "default", Action: def, Rule: "no rule matched",
		Hits: s.counters.def.hits.Load(), Drops: s.counters.def.drops.Load()})
	return out
}

func describe(sel *Selector) string {
	if sel.Any && sel.Proto == "" && len(sel.Ports) == 0 {
		return "any"
	}
	var parts []string
	if sel.Any {
		parts = append(parts, "any")
	}
	for _, f := range []struct {
		k string
		v []string
	}{{"groups", sel.Groups}, {"services", sel.Services}, {"cidrs", sel.CIDRs}, {"hosts", sel.Hosts}} {
		if len(f.v) > 0 {
			parts = append(parts, f.k+"="+strings.Join(f.v, ","))
		}
	}
	if l4 := describeL4(sel.Proto, sel.Ports); l4 != "" {
		parts = append(parts, strings.TrimSpace(l4))
	}
	return strings.Join(parts, " ")
}

func describeL4(proto string, ports []string) string {
	var s string
	if proto != "" {
		s += " proto=" + proto
	}
	if len(ports) > 0 {
		s += " ports=" + strings.Join(ports, ",")
	}
	return s
}
