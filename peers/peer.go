package peers

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/crypto"
)

// PeerConfig is what the control plane knows about a peer.
type PeerConfig struct {
	// PublicKey is the peer's static key; it identifies the peer.
	PublicKey crypto.PublicKey
	// PresharedKey is mixed into the handshake (WireGuard's optional PSK); zero: none.
	PresharedKey crypto.PresharedKey
	// Endpoint is the peer's UDP address; invalid (zero): unknown until the peer sends
	// an authenticated packet.
	Endpoint netip.AddrPort
	// AllowedIPs are the inner prefixes routed to this peer and accepted from it.
	AllowedIPs []netip.Prefix
	// PersistentKeepalive, when nonzero, sends a keepalive after that long without
	// sending anything (keeps NAT mappings open).
	PersistentKeepalive time.Duration
	// WireGuardFraming marks a stock WireGuard peer (phone, laptop, wg-quick): its
	// transport messages carry the bare IP packet, padded as WireGuard pads, with no
	// VXLAN header, and the VNI check does not apply to it. L3 only.
	WireGuardFraming bool
}

// Endpoint is a peer's UDP address plus an opaque handle the datapath caches for it
// (a conn.Endpoint; peers does not know the type). It is immutable once published.
type Endpoint struct {
	Addr   netip.AddrPort
	Handle any
}

// Peer is one remote host. The hot path reads it without locks: endpoint and keypairs
// through atomic pointers, counters are atomics.
type Peer struct {
	key       crypto.PublicKey
	handshake *crypto.Handshake
	keypairs  crypto.Keypairs

	endpoint  atomic.Pointer[Endpoint]
	keepalive atomic.Int64 // PersistentKeepalive in nanoseconds
	removed   atomic.Bool
	wgFraming atomic.Bool // PeerConfig.WireGuardFraming
	// csumPartial: the peer's data packets of the current session say it takes inner
	// checksums left partial (the tunnel learns it from them; a handshake forgets it).
	csumPartial atomic.Bool
	// pathMTU is the largest IP packet the path to the endpoint carries, as the tunnel
	// found it (route MTU, ICMP errors, probes); 0: not known yet.
	pathMTU atomic.Int32

	// allowedPtr is replaced whole by the table's writers (under its mutex).
	allowedPtr atomic.Pointer[[]netip.Prefix]
	psk        crypto.PresharedKey

	session Session

	// tx and rx live on their own cache lines: the outbound and inbound goroutines
	// update them concurrently.
	tx traffic
	rx traffic
	// unanswered is WireGuard's new-handshake timer as a timestamp, on its own cache line
	// because both loops write it: the unix nanoseconds of the first data packet sent
	// since the last authenticated packet received (0: nothing unanswered). AddTx sets it
	// only when zero, AddRx and HandshakeDone clear it, the timers claim it (ClaimUnanswered).
	unanswered paddedInt64

	handshakes    atomic.Uint64
	noReply       atomic.Uint64 // new handshakes started because data got no reply
	lastHandshake atomic.Int64  // unix nanoseconds; 0: never
	lastRxData    atomic.Int64  // unix nanoseconds of the last non-keepalive packet received
	// keepaliveArmed: when the tunnel's timers armed WireGuard's keepalive timer (data
	// received since our last send); written by the timer goroutine only.
	keepaliveArmed atomic.Int64
	drops          DropCounters
}

type traffic struct {
	_       [64]byte
	packets atomic.Uint64
	bytes   atomic.Uint64
	last    atomic.Int64 // unix nanoseconds
	_       [40]byte
}

// paddedInt64 is an atomic on a cache line of its own.
type paddedInt64 struct {
	_ [64]byte
	v atomic.Int64
	_ [56]byte
}

// Key returns the peer's static public key.
func (p *Peer) Key() crypto.PublicKey { return p.key }

// Handshake returns the peer's Noise handshake state.
func (p *Peer) Handshake() *crypto.Handshake { return p.handshake }

// Keypairs returns the peer's current, previous and next keypairs.
func (p *Peer) Keypairs() *crypto.Keypairs { return &p.keypairs }

// Session returns the peer's handshake state.
func (p *Peer) Session() *Session { return &p.session }

// Removed reports whether the peer was removed from its table; the datapath drops what
// it still holds for it.
func (p *Peer) Removed() bool { return p.removed.Load() }

// WireGuardFraming reports whether the peer speaks WireGuard's own framing (bare IP in
// transport messages, no VXLAN header). Lock-free, for the hot path.
func (p *Peer) WireGuardFraming() bool { return p.wgFraming.Load() }

// AcceptsPartial reports whether the peer takes inner checksums left partial, as its last
// authenticated data packet said. Lock-free, for the hot path.
func (p *Peer) AcceptsPartial() bool { return p.csumPartial.Load() }

// SetAcceptsPartial records what the peer's data packets say (the tunnel's receive loop;
// false when a new session starts, until its first data packet says again).
func (p *Peer) SetAcceptsPartial(ok bool) {
	if p.csumPartial.Load() != ok {
		p.csumPartial.Store(ok)
	}
}

// PathMTU is the largest IP packet the path to the peer's endpoint carries, as the
// tunnel last found it; 0 while not known (the tunnel then sends up to its MTU).
func (p *Peer) PathMTU() int { return int(p.pathMTU.Load()) }

// SetPathMTU records the path MTU toward the endpoint (0: forget it).
func (p *Peer) SetPathMTU(mtu int) { p.pathMTU.Store(int32(mtu)) }

// Endpoint returns the peer's current UDP address (invalid when unknown).
func (p *Peer) Endpoint() netip.AddrPort {
	if e := p.endpoint.Load(); e != nil {
		return e.Addr
	}
	return netip.AddrPort{}
}

// LoadEndpoint returns the published endpoint, or nil. Lock-free, for the hot path.
func (p *Peer) LoadEndpoint() *Endpoint { return p.endpoint.Load() }

// SetEndpoint publishes a new endpoint (roaming, or a cached handle for the same
// address). Allocates; callers on the hot path call it only when the address changed.
func (p *Peer) SetEndpoint(addr netip.AddrPort, handle any) {
	p.endpoint.Store(&Endpoint{Addr: addr, Handle: handle})
}

// CompareAndSwapEndpoint publishes next only if old is still the published endpoint
// (so caching a handle never undoes a concurrent roam).
func (p *Peer) CompareAndSwapEndpoint(old, next *Endpoint) bool {
	return p.endpoint.CompareAndSwap(old, next)
}

// PersistentKeepalive returns the configured persistent keepalive interval (0: off).
func (p *Peer) PersistentKeepalive() time.Duration {
	return time.Duration(p.keepalive.Load())
}

// AddTx counts packets and bytes sent at now; data reports whether any of them carried
// data (not only keepalives): data arms the no-reply timer (Unanswered) unless it is
// armed already. Call once per batch; armed, that costs one atomic load.
func (p *Peer) AddTx(packets, bytes uint64, data bool, now int64) {
	p.tx.packets.Add(packets)
	p.tx.bytes.Add(bytes)
	p.tx.last.Store(now)
	if data && p.unanswered.v.Load() == 0 {
		p.unanswered.v.CompareAndSwap(0, now)
	}
}

// AddRx counts authenticated packets and bytes received at now; data reports whether any
// of them carried data (not only keepalives). Any of them answers what was sent: the
// no-reply timer is disarmed. Call once per batch; disarmed, that costs one atomic load.
func (p *Peer) AddRx(packets, bytes uint64, data bool, now int64) {
	p.rx.packets.Add(packets)
	p.rx.bytes.Add(bytes)
	p.rx.last.Store(now)
	if data {
		p.lastRxData.Store(now)
	}
	p.answered()
}

func (p *Peer) answered() {
	if v := p.unanswered.v.Load(); v != 0 {
		// CAS, not Store: a send that re-armed after a concurrent claim is not undone.
		p.unanswered.v.CompareAndSwap(v, 0)
	}
}

// Unanswered returns the unix nanoseconds of the first data packet sent since the last
// authenticated packet received from the peer (0: none): WireGuard's new-handshake timer,
// armed by data sent and disarmed by any authenticated receive.
func (p *Peer) Unanswered() int64 { return p.unanswered.v.Load() }

// ClaimUnanswered disarms the no-reply timer if it still reads since (nothing was received
// meanwhile) and counts a no-reply handshake (PeerStats.NoReplyHandshakes); true: the
// caller starts that handshake. The next data sent arms the timer again.
func (p *Peer) ClaimUnanswered(since int64) bool {
	if since == 0 || !p.unanswered.v.CompareAndSwap(since, 0) {
		return false
	}
	p.noReply.Add(1)
	return true
}

// KeepaliveArmedAt returns when the tunnel's timers last armed the keepalive timer (unix
// nanoseconds; 0: never); ArmKeepalive sets it. The timer goroutine's own state.
func (p *Peer) KeepaliveArmedAt() int64 { return p.keepaliveArmed.Load() }

// ArmKeepalive records that the keepalive timer was armed at (unix nanoseconds).
func (p *Peer) ArmKeepalive(at int64) { p.keepaliveArmed.Store(at) }

// LastSent, LastReceived and LastReceivedData return unix nanoseconds (0: never).
func (p *Peer) LastSent() int64         { return p.tx.last.Load() }
func (p *Peer) LastReceived() int64     { return p.rx.last.Load() } //nolint:revive
func (p *Peer) LastReceivedData() int64 { return p.lastRxData.Load() }

// AddDrop counts n packets of this peer dropped for r.
func (p *Peer) AddDrop(r DropReason, n uint64) { p.drops.Add(r, n) }

// Drops returns the count of drops for r.
func (p *Peer) Drops(r DropReason) uint64 { return p.drops.Get(r) }

// HandshakeDone records a completed handshake at now. The peer's handshake message was
// authenticated: like any authenticated receive, it disarms the no-reply timer.
func (p *Peer) HandshakeDone(now time.Time) {
	p.handshakes.Add(1)
	p.lastHandshake.Store(now.UnixNano())
	p.answered()
}

// AllowedIPs returns a copy of the peer's allowed prefixes as configured.
func (p *Peer) AllowedIPs() []netip.Prefix {
	return slices.Clone(p.allowedSnapshot())
}

func (p *Peer) allowedSnapshot() []netip.Prefix {
	if a := p.allowedPtr.Load(); a != nil {
		return *a
	}
	return nil
}

// PeerStats is a snapshot of a peer's state and counters.
type PeerStats struct {
	PublicKey     crypto.PublicKey
	Endpoint      netip.AddrPort
	AllowedIPs    []netip.Prefix
	LastHandshake time.Time // zero: never
	RxBytes       uint64
	TxBytes       uint64
	RxPackets     uint64
	TxPackets     uint64
	Handshakes    uint64
	// NoReplyHandshakes counts new handshakes started because data sent got no
	// authenticated reply for the tunnel's NewHandshakeTimeout (the peer may have lost
	// the session: restarted, or re-added the peer).
	NoReplyHandshakes uint64
	// PathMTU is the largest IP packet the path to the endpoint carries (0: not known).
	PathMTU int
	Drops   map[string]uint64 // by DropReason name; only nonzero reasons
}

// Stats returns a snapshot of the peer's counters (allocates; control path).
func (p *Peer) Stats() PeerStats {
	s := PeerStats{
		PublicKey:  p.key,
		Endpoint:   p.Endpoint(),
		AllowedIPs: p.AllowedIPs(),
		RxBytes:    p.rx.bytes.Load(),
		TxBytes:    p.tx.bytes.Load(),
		RxPackets:  p.rx.packets.Load(),
		TxPackets:  p.tx.packets.Load(),
		Handshakes: p.handshakes.Load(),
		Drops:      p.drops.Snapshot(),

		NoReplyHandshakes: p.noReply.Load(),
		PathMTU:           p.PathMTU(),
	}
	if ns := p.lastHandshake.Load(); ns != 0 {
		s.LastHandshake = time.Unix(0, ns)
	}
	return s
}
