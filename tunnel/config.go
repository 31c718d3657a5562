package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/vxlan"
)

// Config configures a Tunnel. Start from DefaultConfig and set Identity.
type Config struct {
	// VNI is the VXLAN network identifier written into every packet and required of
	// every received one (24 bits).
	VNI uint32
	// MTU is the largest inner packet; padding never takes a packet past it.
	MTU int
	// Identity is this host's static key; required. The tunnel does not close it.
	Identity *crypto.Identity
	// Logger receives control-path events; nil: discard. Nothing is logged per packet.
	Logger *slog.Logger
	// Router routes outbound packets and vets inbound ones; nil: L3 routing over the
	// peer table's allowed prefixes (see router.go).
	Router Router
	// Policy judges inner packets in both directions (policy.go); nil: none.
	Policy Policy
	// NextProtoL2 marks inner packets as Ethernet frames (VXLAN-GPE next protocol 0x03,
	// no padding) instead of IP packets.
	NextProtoL2 bool
	// QueueLen bounds each peer's queue of packets waiting for a handshake.
	QueueLen int
	// HandshakeQueueLen bounds the queue of received handshake messages; a message that
	// finds it full is dropped, and from an eighth full on the tunnel counts as under load
	// (Identity.Admit then asks for cookies).
	HandshakeQueueLen int
	// MaxFloodCopies bounds the extra copies one outbound batch may make when the Router
	// returns several peers for a packet.
	MaxFloodCopies int
	// CryptoWorkers is how many goroutines share the encryption and decryption of one
	// batch (parallel.go): 0 picks GOMAXPROCS on machines of 4 cores or more and 1 (each
	// loop seals and opens its own batch, run to completion) below; 1 never shares; more
	// forces sharing (tests of the parallel path on small machines).
	CryptoWorkers int
	// TimerInterval is how often handshake retransmits, keepalives and rekeys are checked.
	TimerInterval time.Duration
	// RekeyAfterTime starts a new handshake when the current keypair we initiated is this
	// old, in addition to crypto's own NeedsRekey. Tests shorten it to exercise rotation.
	RekeyAfterTime time.Duration
	// RekeyAttemptTime is how long handshake attempts go on before the queued packets
	// are dropped (DropHandshakeTimeout) and the attempt stops.
	RekeyAttemptTime time.Duration
	// RekeyTimeout is how long to wait for a handshake response before retransmitting.
	RekeyTimeout time.Duration
	// KeepaliveTimeout: this long after the first data received since we last sent anything,
	// send a keepalive if we still sent nothing (WireGuard's keepalive timer; also while data
	// keeps coming, so a host that only receives answers every KeepaliveTimeout).
	KeepaliveTimeout time.Duration
	// NewHandshakeTimeout: after sending data, start a new handshake when no authenticated
	// packet came back for this long (WireGuard's new-handshake timer): the peer may have
	// lost the session (restarted, or re-added us) and cannot decrypt what we send. Longer
	// than KeepaliveTimeout, so that a peer that only receives has answered with a keepalive.
	NewHandshakeTimeout time.Duration
	// RouteMTU returns the MTU of the route toward an underlay address without sending
	// anything (udp.Bind.RouteMTU); it bounds each peer's path MTU. nil: the device MTU
	// plus the framing's overhead is the bound.
	RouteMTU func(netip.Addr) (int, error)
	// PathMTUInterval is how often each peer's path MTU is searched again by probes
	// (pmtu.go), so that a path that widened is used again; 0 turns probing off (ICMP
	// errors and the route MTU still apply).
	PathMTUInterval time.Duration
	// PathMTUProbeTimeout is how long a probe waits for its acknowledgement before it is
	// sent again (three times in all).
	PathMTUProbeTimeout time.Duration
}

// DefaultConfig returns the production defaults; set Identity before New.
func DefaultConfig() Config {
	return Config{
		// VNI 1: the agent's default; all hosts of one overlay must agree.
		VNI: 1,
		// 1412 fits a 1500-byte IPv6 underlay: 1500 - 40 (IPv6) - 8 (UDP) - 32 (transport
		// header + tag) - 8 (VXLAN).
		MTU: 1412,
		// 64 packets cover a TCP window's burst during the ~1 RTT of a handshake without
		// holding much memory per peer (each waits in a 64 KiB pool buffer).
		QueueLen: 64,
		// 1024 as wireguard-go's handshake queue; under load from 128 (an eighth).
		HandshakeQueueLen: 1024,
		// 128 copies: one device batch flooded to one extra peer, or a few peers' worth.
		MaxFloodCopies: 128,
		// 100ms is far below RekeyTimeout (5s) and KeepaliveTimeout (10s), so timer
		// resolution does not matter, while scanning the table stays cheap.
		TimerInterval: 100 * time.Millisecond,
		// WireGuard's timers (crypto/constants.go).
		RekeyAfterTime:   crypto.RekeyAfterTime,
		RekeyAttemptTime: crypto.RekeyAttemptTime,
		RekeyTimeout:     crypto.RekeyTimeout,
		KeepaliveTimeout: crypto.KeepaliveTimeout,
		// KeepaliveTimeout+RekeyTimeout (15 s): the peer's keepalive plus a handshake's time.
		NewHandshakeTimeout: crypto.NewHandshakeTime,
		// Searched again every 10 minutes, as long as the kernel keeps a learned PMTU
		// (net.ipv4.route.mtu_expires); a probe waits a second, several RTTs anywhere.
		PathMTUInterval:     10 * time.Minute,
		PathMTUProbeTimeout: time.Second,
	}
}

// DefaultLocalConfig is DefaultConfig with fast timers, for tests on one machine.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.TimerInterval = 10 * time.Millisecond
	c.RekeyTimeout = 500 * time.Millisecond
	c.KeepaliveTimeout = time.Second
	c.NewHandshakeTimeout = c.KeepaliveTimeout + c.RekeyTimeout
	c.PathMTUInterval = 0 // tests of path MTU turn probing on themselves
	c.PathMTUProbeTimeout = 200 * time.Millisecond
	return c
}

// ErrInvalidConfig wraps every validation failure of New.
var ErrInvalidConfig = errors.New("tunnel: invalid config")

func (c *Config) validate() error {
	switch {
	case c.Identity == nil:
		return fmt.Errorf("%w: Identity is required (crypto.NewIdentity)", ErrInvalidConfig)
	case c.VNI > vxlan.MaxVNI:
		return fmt.Errorf("%w: VNI %d does not fit in 24 bits", ErrInvalidConfig, c.VNI)
	case c.MTU < 576 || c.MTU > maxInner:
		return fmt.Errorf("%w: MTU %d outside [576, %d]", ErrInvalidConfig, c.MTU, maxInner)
	case c.CryptoWorkers < 0 || c.CryptoWorkers > maxCryptoWorkers:
		return fmt.Errorf("%w: CryptoWorkers %d: want 0 (automatic) to %d", ErrInvalidConfig, c.CryptoWorkers, maxCryptoWorkers)
	case c.QueueLen <= 0, c.HandshakeQueueLen <= 0, c.MaxFloodCopies < 0:
		return fmt.Errorf("%w: QueueLen, HandshakeQueueLen must be > 0 (DefaultConfig sets them)", ErrInvalidConfig)
	case c.TimerInterval <= 0, c.RekeyAfterTime <= 0, c.RekeyAttemptTime <= 0, c.RekeyTimeout <= 0, c.KeepaliveTimeout <= 0, c.NewHandshakeTimeout <= 0:
		return fmt.Errorf("%w: timer durations must be > 0 (DefaultConfig sets them)", ErrInvalidConfig)
	case c.PathMTUInterval < 0, c.PathMTUInterval > 0 && c.PathMTUProbeTimeout <= 0:
		return fmt.Errorf("%w: PathMTUInterval must be >= 0 and, when > 0, PathMTUProbeTimeout > 0", ErrInvalidConfig)
	case c.NewHandshakeTimeout <= c.KeepaliveTimeout:
		return fmt.Errorf("%w: NewHandshakeTimeout %v must exceed KeepaliveTimeout %v (a peer that only receives answers with a keepalive after KeepaliveTimeout; WireGuard waits KeepaliveTimeout+RekeyTimeout)",
			ErrInvalidConfig, c.NewHandshakeTimeout, c.KeepaliveTimeout)
	}
	return nil
}
