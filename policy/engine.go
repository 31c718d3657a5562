package policy

// An Engine sits in the datapath twice:
//
//	inbound:  bind → open (decrypt) → source-address check → Engine.Inbound(pkt, peer) → TUN
//	outbound: TUN → route → Engine.Outbound(pkt) → seal → bind
//
// Per packet: Classify parses the headers into a Flow on the stack; the flow's shard is
// locked, the key looked up; an entry that is live and validated by the current Set's
// generation passes at once (AllowedByFlow) after its expiry is pushed out. Otherwise the
// shard is unlocked, the rules of the Set (read through an atomic pointer, no lock) are
// walked once, the decision counted against its rule, and an admitted flow is inserted.
// An entry validated by an older Set (after Load or Rebind) is re-checked against the
// new one on its next packet, and removed if the new one refuses it.

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the flow table's size and timeouts. Every timeout is refreshed by each
// packet of the flow.
type Config struct {
	// MaxFlows bounds the flow table; beyond it the oldest-expiring flows are evicted.
	MaxFlows int
	// MaxFlowsPerPeer bounds the flows one peer (by its Endpoint.Host) may have opened
	// inbound at once; a new flow beyond it is refused (ReasonFlowQuota), so one peer
	// cannot fill the table and push out everyone else's flows. 0: no quota. At most
	// MaxFlows.
	MaxFlowsPerPeer int
	// TCPTimeout keeps an established TCP flow (one that saw a reply).
	TCPTimeout time.Duration
	// TCPPendingTimeout keeps a TCP flow that has seen packets in one direction only (a
	// SYN without answer), so scans and SYN floods leave quickly.
	TCPPendingTimeout time.Duration
	// TCPClosingTimeout keeps a TCP flow after an RST or FINs from both sides, for the
	// last ACKs and retransmissions.
	TCPClosingTimeout time.Duration
	// UDPTimeout keeps a UDP flow.
	UDPTimeout time.Duration
	// ICMPTimeout keeps an ICMP flow (an echo identifier, or other ICMP between two hosts).
	ICMPTimeout time.Duration
	// OtherTimeout keeps flows of other IP protocols.
	OtherTimeout time.Duration
	// FragmentTimeout keeps the verdict of a fragmented datagram's first fragment for its
	// later fragments.
	FragmentTimeout time.Duration
}

// DefaultConfig returns the production settings.
func DefaultConfig() Config {
	return Config{
		// 32768 flows × 2 slots × 80 bytes ≈ 5 MB allocated at New; a host with more
		// concurrent flows through the overlay sets it higher.
		MaxFlows: 32768,
		// A quarter: one peer (a busy client of this host's services, or a hostile one)
		// can never hold more than that, the other three quarters stay for the rest.
		MaxFlowsPerPeer: 8192,
		// Nebula's conntrack defaults: tcp 12m, udp 3m, other 10m.
		TCPTimeout:   12 * time.Minute,
		UDPTimeout:   3 * time.Minute,
		OtherTimeout: 10 * time.Minute,
		// Longer than the 3 SYN retransmissions a client makes in ~7s, far shorter than
		// the established timeout.
		TCPPendingTimeout: 30 * time.Second,
		// Linux's nf_conntrack_tcp_timeout_close is 10s.
		TCPClosingTimeout: 10 * time.Second,
		// ping sends one echo a second; 30s survives a pause without keeping dead flows.
		ICMPTimeout: 30 * time.Second,
		// Linux's ipfrag_time.
		FragmentTimeout: 30 * time.Second,
	}
}

// DefaultLocalConfig is DefaultConfig with a small table and short timers, for tests.
func DefaultLocalConfig() Config {
	return Config{
		MaxFlows:          1024,
		MaxFlowsPerPeer:   256,
		TCPTimeout:        10 * time.Second,
		TCPPendingTimeout: time.Second,
		TCPClosingTimeout: 500 * time.Millisecond,
		UDPTimeout:        3 * time.Second,
		ICMPTimeout:       time.Second,
		OtherTimeout:      3 * time.Second,
		FragmentTimeout:   time.Second,
	}
}

func (c *Config) validate() error {
	if c.MaxFlows < 1 || c.MaxFlows > 1<<24 {
		return fmt.Errorf("policy: MaxFlows %d: must be 1 to %d", c.MaxFlows, 1<<24)
	}
	if c.MaxFlowsPerPeer < 0 || c.MaxFlowsPerPeer > c.MaxFlows {
		return fmt.Errorf("policy: MaxFlowsPerPeer %d: must be 0 (no quota) to MaxFlows (%d)", c.MaxFlowsPerPeer, c.MaxFlows)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TCPTimeout", c.TCPTimeout}, {"TCPPendingTimeout", c.TCPPendingTimeout}, {"TCPClosingTimeout", c.TCPClosingTimeout},
		{"UDPTimeout", c.UDPTimeout}, {"ICMPTimeout", c.ICMPTimeout}, {"OtherTimeout", c.OtherTimeout}, {"FragmentTimeout", c.FragmentTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("policy: %s %v: must be positive", d.name, d.v)
		}
	}
	return nil
}

// Engine enforces a Set on packets. Safe for concurrent use by any number of datapath
// goroutines.
type Engine struct {
	cfg   Config
	set   atomic.Pointer[Set]
	flows *flowTable
	drops [numReasons]atomic.Uint64

	// The per-peer quota: peer names interned to small ids (entry.peer), each with a count
	// of the inbound flows it holds, decremented when its entry goes (shard.remove).
	quotaMu  sync.Mutex
	quotaIDs map[string]uint32
}

// maxQuotaPeers bounds the peers the quota tracks; flows of peers seen after that many
// distinct names are not counted (a table of this size never shrinks, names of peers that
// left keep their id).
const maxQuotaPeers = 4096

// New returns an Engine without a policy (everything allowed, nothing tracked) until
// Load.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, flows: newFlowTable(cfg.MaxFlows), quotaIDs: make(map[string]uint32)}, nil
}

// Load makes s the policy for the packets that follow; nil removes the policy. The swap
// is atomic: a packet is judged wholly by the old Set or wholly by the new one. Flows
// admitted under the old Set are re-checked on their next packet.
func (e *Engine) Load(s *Set) { e.set.Store(s) }

// Current returns the Set in force, nil when there is none.
func (e *Engine) Current() *Set { return e.set.Load() }

// Inbound judges a packet received from a peer, after decryption and after the
// datapath checked that its source address is one the peer may use (the flow table
// trusts source addresses to be bound to peers). peer is the sender's identity from its
// certificate: the source's groups and host come from it, never from the packet or the
// Resolver. pkt is an IPv4 or IPv6 packet (the caller passes ARP, NDP and non-IP
// frames without asking); neither pkt nor peer is retained. now is the caller's
// monotonic clock in nanoseconds, read once per batch (see Monotonic).
func (e *Engine) Inbound(pkt []byte, peer *Endpoint, now int64) Verdict {
	return e.judge(pkt, peer, true, now)
}

// Outbound judges a packet read from the TUN before it is sealed: the rules' from side
// is this host (its identity from the Resolver), so a host does not send what its policy
// forbids. pkt is not retained.
func (e *Engine) Outbound(pkt []byte, now int64) Verdict {
	return e.judge(pkt, nil, false, now)
}

var start = time.Now()

// Monotonic returns nanoseconds on a monotonic clock, for the now arguments: read it
// once per batch.
func Monotonic() int64 { return int64(time.Since(start)) }

// MonotonicAt is Monotonic for a time the caller already read (time.Now keeps a
// monotonic reading): a datapath that reads the clock once per batch for its own counters
// passes the same reading here, with no second clock read.
func MonotonicAt(t time.Time) int64 { return int64(t.Sub(start)) }

func (e *Engine) deny(r Reason, rule int32) Verdict {
	e.drops[r].Add(1)
	return Verdict{Decision: Denied, Rule: rule, Reason: r}
}

func (e *Engine) judge(pkt []byte, peer *Endpoint, inbound bool, now int64) Verdict {
	s := e.set.Load()
	if s == nil {
		return Verdict{Decision: AllowedByDefault, Rule: -1}
	}
	var f Flow
	if !classify(pkt, &f) {
		return e.deny(ReasonMalformed, -1)
	}
	if f.Frag == FragLater {
		return e.laterFragment(&f, now)
	}
	key, fwdIsA := makeKey(&f)
	h := e.flows.hash(&key)
	sh := e.flows.shardOf(h)

	sh.mu.Lock()
	if i := sh.find(&key, h); i >= 0 {
		en := &sh.slots[i]
		switch {
		case en.expires <= now:
			sh.remove(i)
			sh.expired++
		case en.gen == s.gen || en.inbound && !(inbound && fwdIsA == en.origA):
			// Validated by this Set, or a packet that cannot be re-checked now (an
			// outbound reply on a flow a peer opened: its identity comes with its next
			// inbound packet, which re-checks it).
			rule := en.rule
			e.touch(en, &f, fwdIsA, now)
			sh.mu.Unlock()
			e.trackFirstFragment(&f, rule, now)
			return Verdict{Decision: AllowedByFlow, Rule: rule}
		default:
			origA, enInbound := en.origA, en.inbound
			sh.mu.Unlock()
			rule, deny := e.decideOrig(s, &f, peer, enInbound, fwdIsA == origA)
			sh.mu.Lock()
			if i := sh.find(&key, h); i >= 0 {
				en := &sh.slots[i]
				if deny {
					sh.remove(i)
				} else {
					en.gen, en.rule = s.gen, int32(rule)
					e.touch(en, &f, fwdIsA, now)
				}
			}
			sh.mu.Unlock()
			if deny {
				s.count(rule, true)
				return e.deny(ReasonPolicyDenied, int32(rule))
			}
			e.trackFirstFragment(&f, int32(rule), now)
			return Verdict{Decision: AllowedByFlow, Rule: int32(rule)}
		}
	}
	sh.mu.Unlock()

	rule, deny := e.decideOrig(s, &f, peer, inbound, true)
	var qid uint32
	if !deny && inbound && peer != nil {
		// The quota is checked before the insert, outside the shard lock: concurrent new
		// flows of one peer may overshoot it by the number of datapath goroutines.
		qid = e.quotaID(peer.Host)
		if qid != 0 && e.flows.peerFlows[qid].Load() >= int32(e.cfg.MaxFlowsPerPeer) {
			return e.deny(ReasonFlowQuota, int32(rule)) // not a hit of the rule: no flow
		}
	}
	s.count(rule, deny)
	if deny {
		return e.deny(ReasonPolicyDenied, int32(rule))
	}
	sh.mu.Lock()
	i := sh.find(&key, h)
	if i < 0 {
		i = sh.insert(&key, h, now)
		en := &sh.slots[i]
		en.origA, en.inbound = fwdIsA, inbound
		if qid != 0 {
			en.peer = qid
			e.flows.peerFlows[qid].Add(1)
		}
	}
	en := &sh.slots[i]
	en.gen, en.rule = s.gen, int32(rule)
	e.touch(en, &f, fwdIsA, now)
	sh.mu.Unlock()
	e.trackFirstFragment(&f, int32(rule), now)
	return s.verdict(rule, false)
}

// quotaID returns the quota id of the peer named host, 0 when there is no quota, no name
// or no id left. Only new inbound flows ask (the rule walk before it costs more).
func (e *Engine) quotaID(host string) uint32 {
	if e.cfg.MaxFlowsPerPeer == 0 || host == "" {
		return 0
	}
	e.quotaMu.Lock()
	defer e.quotaMu.Unlock()
	id, ok := e.quotaIDs[host]
	if !ok && len(e.quotaIDs) < maxQuotaPeers {
		id = uint32(len(e.quotaIDs) + 1)
		e.quotaIDs[host] = id
	}
	return id
}

// decideOrig walks the rules for f's flow in its original direction. same says f travels
// in that direction; inbound says the flow was opened by a peer (its source is peer).
func (e *Engine) decideOrig(s *Set, f *Flow, peer *Endpoint, inbound, same bool) (int, bool) {
	srcAddr, dstAddr, dport := f.Src, f.Dst, f.DstPort
	if !same {
		srcAddr, dstAddr, dport = f.Dst, f.Src, f.SrcPort
	}
	var src, dst endpoint
	if inbound {
		src.addr = srcAddr
		if peer != nil {
			src.host, src.group = peer.Host, peer.Groups
		}
	} else {
		s.lookup(srcAddr, &src)
	}
	s.lookup(dstAddr, &dst)
	return s.decide(&src, &dst, f.Class, dport)
}

// touch updates a flow's TCP state and pushes out its expiry. Caller holds the shard lock.
func (e *Engine) touch(en *entry, f *Flow, fwdIsA bool, now int64) {
	var d time.Duration
	switch f.Class {
	case ProtoTCP:
		reply := fwdIsA != en.origA
		if reply {
			en.state |= stReply
		}
		if f.TCPFlags&tcpRST != 0 {
			en.state |= stRST
		}
		if f.TCPFlags&tcpFIN != 0 {
			if reply {
				en.state |= stFinReply
			} else {
				en.state |= stFinOrig
			}
		}
		switch {
		case en.state&stRST != 0 || en.state&(stFinOrig|stFinReply) == stFinOrig|stFinReply:
			d = e.cfg.TCPClosingTimeout
		case en.state&stReply != 0:
			d = e.cfg.TCPTimeout
		default:
			d = e.cfg.TCPPendingTimeout
		}
	case ProtoUDP:
		d = e.cfg.UDPTimeout
	case ProtoICMP:
		d = e.cfg.ICMPTimeout
	default:
		d = e.cfg.OtherTimeout
	}
	en.expires = now + int64(d)
}

// trackFirstFragment remembers an admitted first fragment's datagram for its later
// fragments.
func (e *Engine) trackFirstFragment(f *Flow, rule int32, now int64) {
	if f.Frag != FragFirst {
		return
	}
	key := makeFragKey(f)
	h := e.flows.hash(&key)
	sh := e.flows.shardOf(h)
	sh.mu.Lock()
	i := sh.find(&key, h)
	if i < 0 {
		i = sh.insert(&key, h, now)
	}
	en := &sh.slots[i]
	en.rule = rule
	en.expires = now + int64(e.cfg.FragmentTimeout)
	sh.mu.Unlock()
}

// laterFragment passes a non-first fragment whose datagram's first fragment was
// admitted; others (a first fragment refused, lost, or not yet arrived) are dropped.
func (e *Engine) laterFragment(f *Flow, now int64) Verdict {
	key := makeFragKey(f)
	h := e.flows.hash(&key)
	sh := e.flows.shardOf(h)
	sh.mu.Lock()
	i := sh.find(&key, h)
	if i >= 0 && sh.slots[i].expires > now {
		rule := sh.slots[i].rule
		sh.mu.Unlock()
		return Verdict{Decision: AllowedByFlow, Rule: rule}
	}
	if i >= 0 {
		sh.remove(i)
		sh.expired++
	}
	sh.mu.Unlock()
	return e.deny(ReasonFragment, -1)
}

// Sweep removes expired flows from the whole table. The datapath expires flows lazily;
// call Sweep from a slow timer so Stats.Flows is accurate and idle memory is reused.
func (e *Engine) Sweep(now int64) { e.flows.sweepAll(now) }

// Test answers `weft policy test` under the current Set (see Set.Test); without a Set
// everything is allowed by default.
func (e *Engine) Test(from, to netip.Addr, port uint16, proto Proto) Verdict {
	s := e.set.Load()
	if s == nil {
		return Verdict{Decision: AllowedByDefault, Rule: -1}
	}
	return s.Test(from, to, port, proto)
}

// Stats is the Engine's counters, read at scrape time.
type Stats struct {
	Flows   int    // flows in the table, expired ones not yet swept included
	Added   uint64 // flows ever inserted (fragment datagrams included)
	Expired uint64 // flows removed after their timeout
	Evicted uint64 // flows removed to make room in a full table
	Drops   [NumReasons]uint64
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	var st Stats
	st.Flows, st.Added, st.Expired, st.Evicted = e.flows.stats()
	for i := range st.Drops {
		st.Drops[i] = e.drops[i].Load()
	}
	return st
}
