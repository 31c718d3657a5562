package netpolicy

import (
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/policy"
)

// rebuild recomputes the address and identity snapshots from membership and Rebinds the
// Set in force (services re-resolved through the catalog).
func (p *Policy) rebuild() {
	ix := newAddrIndex()
	ids := map[crypto.PublicKey]*ident{}
	ownNet, ownAddr := p.deps.Self()
	self := &policy.Endpoint{Host: p.cfg.Name, Groups: p.groupsOf(p.deps.PublicKey)}
	if ownNet.IsValid() {
		ix.add(ownNet, self)
	}
	if ownAddr.IsValid() {
		ix.add(netip.PrefixFrom(ownAddr, ownAddr.BitLen()), self)
	}
	if p.deps.Members != nil {
		p.indexMembers(ix, ids, p.deps.Members())
	}
	// Static peers and WireGuard clients have no member identity (no groups, no host a
	// rule can name): a name no policy document can write (validName refuses ':' and '@')
	// gives them each their own flow quota all the same. This host's clients are indexed
	// by address too, so that traffic to them is not judged as traffic to this host.
	if p.deps.StaticPeers != nil {
		for _, pk := range p.deps.StaticPeers() {
			if key, err := crypto.ParsePublicKey(pk); err == nil && ids[key] == nil {
				ids[key] = &ident{ep: &policy.Endpoint{Host: "static:" + pk}}
			}
		}
	}
	if p.deps.Clients != nil {
		for _, c := range p.deps.Clients() {
			if key, err := crypto.ParsePublicKey(c.PublicKey); err == nil && ids[key] == nil {
				ep := &policy.Endpoint{Host: ClientIdentity(p.cfg.Name, c.Name)}
				ids[key] = &ident{ep: ep}
				if c.Address.IsValid() && ownNet.Contains(c.Address) {
					ix.add(netip.PrefixFrom(c.Address, c.Address.BitLen()), ep)
				}
			}
		}
	}
	p.res.snap.Store(ix)
	p.idents.Store(&ids)
	// Under p.mu: install Loads new Sets under it too, so a Rebind of the old Set never
	// replaces a document installed meanwhile.
	p.mu.Lock()
	if s := p.engine.Current(); s != nil {
		p.engine.Load(s.Rebind())
	}
	p.mu.Unlock()
}

// indexMembers adds the live members whose claims are accepted to the address and key
// indexes. A member the trust layer does not accept (refused: a forged subnet, a certificate
// that does not verify, a duplicate key; or never judged: another mode or VNI) is left out:
// otherwise a gossip-key holder announcing a victim's /24 could take over the victim's name
// and groups in the rules. The WireGuard clients a member announces (clientsOf) get their
// own identity, in the address index (a host route, more specific than the member's /24) and
// for the packets the member's peer forwards from their addresses.
func (p *Policy) indexMembers(ix *addrIndex, ids map[crypto.PublicKey]*ident, members []membership.Member) {
	for _, m := range members {
		if m.Name == p.cfg.Name || m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
			continue
		}
		if !p.deps.Trusted(m.Name) {
			continue
		}
		key := crypto.PublicKey(m.Info.PublicKey)
		// Its groups tag as it stands now: a member gossip judged only after its join
		// event (MemberEvent skips the untrusted) would otherwise keep no groups until its
		// next update.
		groups := parseGroups(m.Tags[groupsTag])
		p.mu.Lock()
		p.tagGroups[key] = groups
		p.mu.Unlock()
		ep := &policy.Endpoint{Host: m.Name, Groups: p.groupsOf(key)}
		ix.add(m.Info.Subnet, ep)
		id := &ident{ep: ep}
		if addrs := p.clientsOf(m); len(addrs) > 0 {
			cep := &policy.Endpoint{Host: ClientIdentity(m.Name, "")}
			id.clients = make(map[netip.Addr]*policy.Endpoint, len(addrs))
			for _, a := range addrs {
				ix.add(netip.PrefixFrom(a, 32), cep)
				id.clients[a] = cep
			}
		}
		ids[key] = id
	}
}

// ident is a peer's policy identity: its own, and for a member that forwards for
// WireGuard clients, theirs by source address.
type ident struct {
	ep      *policy.Endpoint
	clients map[netip.Addr]*policy.Endpoint // nil: the peer forwards for nobody
}

// of is the identity of the sender of pkt, an inbound packet from the peer: a client's
// when pkt's IPv4 source is an address the peer announces for a client, else the peer's.
// Clients are IPv4 only (clienttag). No allocation.
func (id *ident) of(pkt []byte) *policy.Endpoint {
	if id.clients != nil && len(pkt) >= 20 && pkt[0]>>4 == 4 {
		if ep := id.clients[netip.AddrFrom4([4]byte(pkt[12:16]))]; ep != nil {
			return ep
		}
	}
	return id.ep
}

// ClientIdentity is the policy identity of a stock WireGuard client of host: the rules
// cannot name it (validName refuses '@' and '/'), it has no groups, only any, cidrs and
// services selectors match it; it is the name of its flow quota. At host itself the client
// is known by name ("client@host/phone"); elsewhere only by its address in host's client
// tag ("client@host"), so the clients of one host share one flow quota at other hosts.
func ClientIdentity(host, name string) string {
	if name == "" {
		return "client@" + host
	}
	return "client@" + host + "/" + name
}

// addrIndex finds the endpoint of an address: a host route (this host's address, a
// WireGuard client's) in a map, then its /24 (the usual member subnet) in a map, other
// prefix lengths by a scan.
type addrIndex struct {
	byAddr map[netip.Addr]*policy.Endpoint   // /32 and /128 host routes
	byNet  map[netip.Prefix]*policy.Endpoint // the other prefixes, masked
	lens   []int                             // the prefix lengths in byNet, longest first
}

func newAddrIndex() *addrIndex {
	return &addrIndex{byAddr: map[netip.Addr]*policy.Endpoint{}, byNet: map[netip.Prefix]*policy.Endpoint{}}
}

// add indexes p. A lookup costs one map probe per distinct prefix length (a cluster's
// hosts share one, subnet_len), whatever the number of members.
func (ix *addrIndex) add(p netip.Prefix, ep *policy.Endpoint) {
	p = p.Masked()
	if p.IsSingleIP() {
		ix.byAddr[p.Addr()] = ep
		return
	}
	ix.byNet[p] = ep
	if !slices.Contains(ix.lens, p.Bits()) {
		ix.lens = append(ix.lens, p.Bits())
		slices.SortFunc(ix.lens, func(x, y int) int { return y - x })
	}
}

// lookup returns the endpoint of the longest prefix holding a.
func (ix *addrIndex) lookup(a netip.Addr) (*policy.Endpoint, bool) {
	if ep, ok := ix.byAddr[a]; ok {
		return ep, true
	}
	for _, b := range ix.lens {
		p, err := a.Prefix(b)
		if err != nil {
			continue // an IPv6 length for an IPv4 address
		}
		if ep, ok := ix.byNet[p]; ok {
			return ep, true
		}
	}
	return nil, false
}

// resolver is policy.Resolver over the subsystem's snapshots and the catalog.
type resolver struct {
	p    *Policy
	snap atomic.Pointer[addrIndex]
}

var _ policy.Resolver = (*resolver)(nil)

// Endpoint is asked once per new flow from the datapath: a map lookup in the snapshot,
// no lock, no allocation (the Endpoint is copied, its Groups slice shared read-only).
func (r *resolver) Endpoint(a netip.Addr) (policy.Endpoint, bool) {
	if ep, ok := r.snap.Load().lookup(a); ok {
		return *ep, true
	}
	return policy.Endpoint{}, false
}

// Service lists every instance of name the catalog knows, passing or not (Deps.Instances).
// The catalog carries no protocol: an instance's port is open to TCP and UDP.
func (r *resolver) Service(name string) []policy.Instance {
	if r.p.deps.Instances == nil {
		return nil
	}
	return r.p.deps.Instances(name)
}
