package trust

// Trust: no member can speak for another. Every claim a member makes in its tags is checked
// here before the datapath acts on it (the gossip glue calls CheckClaim for every member
// update, never per packet):
//
//	member tags ──▶ CheckClaim (pure: policy × member) ──ok──▶ duplicate-key check ──▶ peer
//	                      │ refused                                │ refused
//	                      └──────────────▶ Ledger.Note: log once per change, count by reason,
//	                                       shown in `weft members`; not peered, no services
//
// Without a CA: a subnet is one /24 of the cluster CIDR (or a static prefix that
// gossip.allowed_static lists) and overlaps neither this host's subnet nor a static peer's
// prefixes; the MAC is the one derived from the public key; the key is neither this host's
// nor a static peer's, and no other live member announces it. Then incumbency
// (incumbency.go): the /24 is not held by another alive member, and the name is not bound to
// another key. With a CA (pki.ca), the member
// must also carry a certificate (tag identity.TagKey) that verifies, is not blocklisted, and
// names its node name, public key and subnet.
//
// A refusal only ever withholds the refused member's claims: nothing that an honest member
// holds is withdrawn for it, because a refused member never reaches the peer table.

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
)

// Reasons a claim is refused without a CA; with one, identity.Reason's labels add to them.
// They are the labels of weft_gossip_claims_refused_total and shown by `weft members`.
const (
	ReasonSubnetNotSlot  = "subnet_not_cluster_slot" // not one slot (subnet_len) of the cluster CIDR
	ReasonStaticNotAllow = "static_not_allowed"      // a static prefix gossip.allowed_static does not list
	ReasonOverlapsOwn    = "subnet_overlaps_own"     // overlaps this host's subnet
	ReasonOverlapsStatic = "subnet_overlaps_static"  // overlaps a static peer's allowed IPs
	ReasonMACNotDerived  = "mac_not_derived"         // the L2 MAC is not derived from the key
	ReasonOwnKey         = "own_key"                 // this host's own public key
	ReasonStaticPeerKey  = "static_peer_key"         // the key of a static peer of the config
	ReasonDuplicateKey   = "duplicate_key"           // another live member announces the key
	ReasonNoCertificate  = "no_certificate"          // a CA is configured and the member has none

	// Without a CA, incumbency (incumbency.go):
	ReasonSubnetHeld      = "subnet_held"      // another alive member held the /24 first
	ReasonSubnetContested = "subnet_contested" // claimed together with another member: neither holds it
	ReasonNameKeyChanged  = "name_key_changed" // the member name was first announced with another key
)

const (
	certExpiryWarning     = 7 * 24 * time.Hour // warn this long before a certificate expires
	maxRefusalDetailBytes = 300                // a refusal's detail as shown; tags are hostile
)

// RecheckInterval is how often members are re-verified with a CA (certificates expire while
// members stay), and how long the AllocationFilter keeps a verdict.
const RecheckInterval = 30 * time.Second

// RefusalReasons is every label of weft_gossip_claims_refused_total: a closed set, so that a
// hostile member cannot create time series.
func RefusalReasons() []string {
	return append([]string{ReasonSubnetNotSlot, ReasonStaticNotAllow, ReasonOverlapsOwn, ReasonOverlapsStatic,
		ReasonMACNotDerived, ReasonOwnKey, ReasonStaticPeerKey, ReasonDuplicateKey, ReasonNoCertificate,
		ReasonSubnetHeld, ReasonSubnetContested, ReasonNameKeyChanged},
		identity.Reasons()...)
}

// ClaimError is a refused claim: a reason label (metric, `weft members`) and a detail.
type ClaimError struct {
	Reason string // one of RefusalReasons
	Detail string // what was refused, for people; may quote the member's tags
}

func (e *ClaimError) Error() string { return e.Reason + ": " + e.Detail }

// Refuse builds a refusal for reason, its detail formatted as by fmt.Sprintf.
func Refuse(reason, format string, args ...any) *ClaimError {
	return &ClaimError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Policy is what a host checks claims against: its own config and state at one moment.
// It is a plain value so that tests drive CheckClaim without an agent.
type Policy struct {
	Cluster       netip.Prefix   // cluster CIDR, cut into slots of SubnetBits
	SubnetBits    int            // a host's prefix length (subnet_len); 0: 24
	AllowedStatic []netip.Prefix // gossip.allowed_static: static prefixes members may announce
	Own           netip.Prefix   // this host's subnet (zero: none)
	OwnKey        crypto.PublicKey
	L2            bool // the MAC is checked (l2 modes)
	Static        []StaticClaim
	PKI           *PKI // nil: no CA
	Now           time.Time
}

// StaticClaim is a static peer of the local config: it always wins over gossip.
type StaticClaim struct {
	Key      crypto.PublicKey
	HasKey   bool // plain VTEP peers have none
	Prefixes []netip.Prefix
}

// MemberClaim is what one member announces.
type MemberClaim struct {
	Name string
	Info membership.NodeInfo
	Cert string // the identity.TagKey tag, "" when absent
}

// CheckClaim checks one member's announcement against p and returns what its certificate
// lets it claim (zero without a CA), or a *ClaimError. The duplicate-key rule needs the other
// members and is applied by the caller (Ledger.Candidate).
func CheckClaim(p *Policy, m MemberClaim) (identity.Claims, *ClaimError) {
	key := crypto.PublicKey(m.Info.PublicKey)
	var claims identity.Claims
	if p.PKI != nil {
		if m.Cert == "" {
			return claims, Refuse(ReasonNoCertificate, "a CA is configured and the member carries no certificate")
		}
		cert, err := identity.DecodeTag(m.Cert)
		if err == nil {
			claims, err = identity.Verify(cert, p.PKI.Pool, p.Now, p.PKI.Blocklist)
		}
		if err == nil {
			err = claims.Check(m.Name, key, m.Info.Subnet)
		}
		if err != nil {
			return identity.Claims{}, Refuse(identity.Reason(err), "%v", err)
		}
	}
	if key == p.OwnKey {
		return claims, Refuse(ReasonOwnKey, "announces this host's own public key (a copy of its state directory?)")
	}
	for _, s := range p.Static {
		if s.HasKey && s.Key == key {
			return claims, Refuse(ReasonStaticPeerKey, "announces the public key of a static peer of the config, which always wins")
		}
	}
	sn := m.Info.Subnet
	if err := p.checkSubnet(sn, m.Info.Static); err != nil {
		return claims, err
	}
	if p.L2 && m.Info.MAC != ([6]byte{}) {
		if want := DerivedMAC(key); m.Info.MAC != want {
			return claims, Refuse(ReasonMACNotDerived, "announces MAC %s, its key's is %s", macString(m.Info.MAC), macString(want))
		}
	}
	return claims, nil
}

// slotBits is the prefix length of a host's subnet.
func (p *Policy) slotBits() int {
	if p.SubnetBits == 0 {
		return 24
	}
	return p.SubnetBits
}

// checkSubnet: one slot (subnet_len) of the cluster CIDR, or (static) within gossip.allowed_static; and no
// overlap with this host's subnet or a static peer's prefixes.
func (p *Policy) checkSubnet(sn netip.Prefix, static bool) *ClaimError {
	bits := p.slotBits()
	slot := sn.Addr().Is4() && sn.Bits() == bits && p.Cluster.Bits() < bits && p.Cluster.Contains(sn.Addr())
	if !slot {
		if !static {
			return Refuse(ReasonSubnetNotSlot, "announces %s, not one /%d of the cluster CIDR %s (every host of a cluster must have the same subnet_len)", sn, bits, p.Cluster)
		}
		if !slices.ContainsFunc(p.AllowedStatic, func(a netip.Prefix) bool { return PrefixWithin(sn, a) }) {
			return Refuse(ReasonStaticNotAllow, "announces static %s, neither a /%d of the cluster CIDR %s nor within gossip.allowed_static %v", sn, bits, p.Cluster, p.AllowedStatic)
		}
	}
	if p.Own.IsValid() && sn.Overlaps(p.Own) {
		return Refuse(ReasonOverlapsOwn, "announces %s, which overlaps this host's subnet %s", sn, p.Own)
	}
	for _, s := range p.Static {
		for _, sp := range s.Prefixes {
			// A static prefix that holds the whole cluster CIDR (a default route, an exit
			// host) is less specific than every member subnet: longest-prefix match keeps
			// both, so it is no conflict.
			if PrefixWithin(p.Cluster, sp) {
				continue
			}
			if sn.Overlaps(sp) {
				return Refuse(ReasonOverlapsStatic, "announces %s, which overlaps static peer prefix %s", sn, sp)
			}
		}
	}
	return nil
}

// PrefixWithin reports whether inner lies within outer (same family, at least as long).
func PrefixWithin(inner, outer netip.Prefix) bool {
	return inner.IsValid() && outer.IsValid() && inner.Addr().Is4() == outer.Addr().Is4() &&
		inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// DerivedMAC is the TAP MAC of the host with public key k: stable across restarts without
// state, locally administered (0x02) and unicast. Members' announced MACs must be this.
func DerivedMAC(k crypto.PublicKey) [6]byte {
	sum := sha256.Sum256(append([]byte("weft tap mac "), k.String()...))
	var m [6]byte
	copy(m[:], sum[:6])
	m[0] = m[0]&0xfc | 0x02
	return m
}

// macString formats a MAC as l2.MAC does (lowercase, colon-separated).
func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }
