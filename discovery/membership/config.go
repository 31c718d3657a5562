package membership

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// DefaultGossipPort is Serf's customary port, TCP and UDP.
const DefaultGossipPort = 7946

// DefaultClusterCIDR is cut into one /24 per host.
var DefaultClusterCIDR = netip.MustParsePrefix("10.42.0.0/16")

// ErrConfig wraps every validation failure of a Config.
var ErrConfig = errors.New("membership config")

// Config configures a Cluster. Build one from DefaultConfig or DefaultLocalConfig
// and change what differs; New validates it.
type Config struct {
	// NodeName is this host's unique name in the cluster. Default: the hostname.
	NodeName string

	// BindAddr is the IP the gossip listeners (TCP and UDP) bind to.
	BindAddr string
	// BindPort is the gossip port. 0 picks a free port (tests); the chosen
	// port is then advertised and visible in LocalMember().Addr.
	BindPort int
	// AdvertiseAddr is the IP other members use to reach us; empty means
	// BindAddr, or a private address of the host when BindAddr is 0.0.0.0.
	AdvertiseAddr string
	// AdvertisePort is the port other members use; 0 means BindPort.
	AdvertisePort int

	// GossipKey is the 32-byte key that encrypts and authenticates all gossip
	// (weft's own transport, XChaCha20-Poly1305: transport.go; Serf and memberlist hold
	// no keyring). Members without it cannot join.
	GossipKey []byte
	// Insecure allows an empty GossipKey: gossip then travels in the clear.
	// Without it New refuses an empty key with ErrNoGossipKey.
	Insecure bool

	// KeyringFile, if set, is where this host keeps its keyring after a local change
	// (keyops.go; 0600); when it exists at start it wins over GossipKey.
	KeyringFile string
	// LegacyKeyringFile, if set, is an older weft's Serf keyring (serf.keyring): when
	// KeyringFile does not exist yet, it is read once, written to KeyringFile and removed.
	LegacyKeyringFile string

	// Node is what this host announces. Node.Subnet, Node.Static and
	// Node.StaticSince are ignored: the Cluster fills them from StaticSubnet or
	// the allocator.
	Node NodeInfo

	// Logger receives the Cluster's logs; Serf's and memberlist's own log lines
	// are routed into it at debug level. Nil discards.
	Logger *slog.Logger

	// SnapshotPath, if set, is Serf's snapshot file: members and clocks are
	// recovered from it at restart. Optional.
	SnapshotPath string

	// ClusterCIDR is the IPv4 range cut into per-host /24 subnets; its first
	// /24 is never allocated (see subnet.go). Zero means DefaultClusterCIDR.
	ClusterCIDR netip.Prefix
	// SubnetBits is the prefix length of a host's subnet (Flannel's SubnetLen): 0 means
	// DefaultSubnetBits (24); MinSubnetBits to MaxSubnetBits. Every host of a cluster must
	// use the same: a claim of another length is refused everywhere.
	SubnetBits int
	// SubnetMin and SubnetMax, if valid, bound the allocatable subnets (Flannel's
	// SubnetMin/SubnetMax): slots of the cluster CIDR from SubnetMin to SubnetMax,
	// inclusive. Zero: from the CIDR's second slot to its last.
	SubnetMin, SubnetMax netip.Prefix
	// StaticSubnet, if valid, is this host's subnet: it wins over allocation.
	// It must be a masked IPv4 prefix.
	StaticSubnet netip.Prefix
	// AcceptClaim, if set, reports whether a member's subnet claim counts for
	// allocation (the agent passes its certificate check, so that a member
	// whose certificate does not cover its claim cannot make this host move).
	// Claims that are no IPv4 /24 never count: every host refuses them. It is
	// called from the allocator goroutine, once per member and reconcile.
	AcceptClaim func(Member) bool
	// StaticWins, if set, reports whether another member's static claim on sn
	// makes this host give sn up even when this host held it first (the agent
	// passes gossip.allowed_static). Otherwise a static claim is subject to
	// incumbency like a dynamic one (subnet.go). Allocator goroutine only.
	StaticWins func(sn netip.Prefix) bool
	// StateDir keeps the allocated subnet (file "subnet") across restarts.
	// Empty: nothing is persisted.
	StateDir string

	// EventBuffer is the capacity of the Events channel. When the consumer
	// falls that far behind, the oldest event is dropped and counted
	// (Members stays the truth).
	EventBuffer int
	// ReconcileInterval is how often the subnet allocator rechecks the member
	// list even without member events.
	ReconcileInterval time.Duration

	// Failure detection and gossip timers (memberlist).

	// ProbeInterval is the interval between failure probes of a random member.
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a probe's ack before indirect probes.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect member has to refute before it is
	// declared failed (times ProbeInterval times log(N)).
	SuspicionMult int
	// GossipInterval is the interval between gossip rounds (broadcasts travel
	// with them).
	GossipInterval time.Duration
	// TCPTimeout bounds a TCP connection to a member (join, push-pull).
	TCPTimeout time.Duration
	// PushPullInterval is the interval between full state syncs with a random
	// member; it repairs what gossip missed.
	PushPullInterval time.Duration
	// DeadNodeReclaimTime is after how long a failed member's name may be taken
	// by a host at a different address (a rebooted host with a new IP).
	DeadNodeReclaimTime time.Duration

	// Membership timers (Serf).

	// ReapInterval is the interval of Serf's reaper of left and failed members.
	ReapInterval time.Duration
	// ReconnectInterval is the interval of attempts to reconnect failed members.
	ReconnectInterval time.Duration
	// ReconnectTimeout is after how long a failed member is reaped (EventReap).
	ReconnectTimeout time.Duration
	// TombstoneTimeout is after how long a left member is reaped.
	TombstoneTimeout time.Duration
	// LeavePropagateDelay is how long Leave waits for its intent to spread.
	LeavePropagateDelay time.Duration
	// BroadcastTimeout bounds Leave's and SetTag's wait for their broadcast.
	BroadcastTimeout time.Duration
}

// DefaultConfig returns settings for a LAN or a cloud region: memberlist's
// DefaultLANConfig and Serf's DefaultConfig timers, gossip on 7946.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		NodeName:    name,
		BindAddr:    "0.0.0.0",
		BindPort:    DefaultGossipPort,
		ClusterCIDR: DefaultClusterCIDR,
		// A burst of joins of a whole cluster fits; beyond it Members is the truth.
		EventBuffer: 1024,
		// Tag updates arrive as events; this only repairs a missed one.
		ReconcileInterval: 5 * time.Second,

		// memberlist.DefaultLANConfig: detects a failure in ~5 s on a LAN.
		ProbeInterval:    1 * time.Second,
		ProbeTimeout:     500 * time.Millisecond,
		SuspicionMult:    4,
		GossipInterval:   200 * time.Millisecond,
		TCPTimeout:       10 * time.Second,
		PushPullInterval: 30 * time.Second,
		// A rebooted VM that got a new address may come back under its name.
		DeadNodeReclaimTime: time.Minute,

		// serf.DefaultConfig: keep failed members a day so that a partition heals.
		ReapInterval:        15 * time.Second,
		ReconnectInterval:   30 * time.Second,
		ReconnectTimeout:    24 * time.Hour,
		TombstoneTimeout:    24 * time.Hour,
		LeavePropagateDelay: 1 * time.Second,
		BroadcastTimeout:    5 * time.Second,
	}
}

// DefaultLocalConfig returns fast timers for tests and a single machine: it
// binds 127.0.0.1 on a free port, declares a stopped member failed within a
// few seconds and reaps left/failed members quickly. The timers stay loose
// enough for 20 members on a loaded 2-core machine under -race: tighter probe
// timeouts make healthy members flap.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.EventBuffer = 256
	c.ReconcileInterval = 200 * time.Millisecond
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 3
	c.GossipInterval = 50 * time.Millisecond
	// Fast failure detection rides on the UDP probes above; the TCP timeout bounds a join's
	// push/pull, which a seed on a loaded host answers slowly (1 s failed `weft join` and
	// joins at load 12). It does not delay detecting a failed member.
	c.TCPTimeout = 5 * time.Second
	c.PushPullInterval = 2 * time.Second
	c.DeadNodeReclaimTime = 100 * time.Millisecond
	c.ReapInterval = 500 * time.Millisecond
	c.ReconnectInterval = 200 * time.Millisecond
	c.ReconnectTimeout = 5 * time.Second
	c.TombstoneTimeout = 5 * time.Second
	c.LeavePropagateDelay = 100 * time.Millisecond
	c.BroadcastTimeout = time.Second
	return c
}

// validate fills defaults that have an obvious zero and checks the rest.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("%w: node name is empty", ErrConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	if _, err := newPool(c.ClusterCIDR, c.SubnetBits, c.SubnetMin, c.SubnetMax); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.StaticSubnet.IsValid() && (!c.StaticSubnet.Addr().Is4() || c.StaticSubnet.Masked() != c.StaticSubnet) {
		return fmt.Errorf("%w: static subnet %s must be a masked IPv4 prefix such as %s", ErrConfig, c.StaticSubnet, c.StaticSubnet.Masked())
	}
	if c.Node.VNI > MaxVNI {
		return fmt.Errorf("%w: VNI %d exceeds 24 bits", ErrConfig, c.Node.VNI)
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 1
	}
	if c.ReconcileInterval <= 0 {
		return fmt.Errorf("%w: reconcile interval must be positive", ErrConfig)
	}
	return nil
}

// stdLogger is Serf's and memberlist's logger: their lines at debug level into c.Logger.
func (c *Config) stdLogger() *log.Logger { return log.New(slogWriter{c.Logger}, "", 0) }

// serfConfig translates c into Serf's and memberlist's configs. With a transport (weft's
// gossip encryption) memberlist runs unencrypted over it, its UDP buffer shrunk by the
// sealing overhead; Serf never has a keyring, so it refuses every keyring query.
func (c *Config) serfConfig(tr memberlist.Transport, events chan<- serf.Event, tags map[string]string) *serf.Config {
	stdlog := c.stdLogger()

	ml := memberlist.DefaultLANConfig()
	ml.Name = c.NodeName
	ml.BindAddr = c.BindAddr
	ml.BindPort = c.BindPort
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.AdvertisePort
	if tr != nil {
		ml.Transport = tr
		ml.UDPBufferSize -= PacketOverhead
	}
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.SuspicionMult = c.SuspicionMult
	ml.GossipInterval = c.GossipInterval
	ml.TCPTimeout = c.TCPTimeout
	ml.PushPullInterval = c.PushPullInterval
	ml.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	// No LZW on gossip: memberlist allocates a 64 KiB table for every message it compresses
	// (and a decoder per compressed one it receives): with it off, 100 agents forming a
	// cluster spent 36–45 % less CPU (ARCHITECTURE decision 25). The packets stay on the
	// LAN or a VPC, where their size costs little. Compressed messages from other agents
	// are still read.
	ml.EnableCompression = false
	ml.LogOutput = nil
	ml.Logger = stdlog

	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = c.NodeName
	sc.Tags = tags
	sc.EventCh = events
	sc.MemberlistConfig = ml
	sc.SnapshotPath = c.SnapshotPath
	sc.ReapInterval = c.ReapInterval
	sc.ReconnectInterval = c.ReconnectInterval
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.TombstoneTimeout = c.TombstoneTimeout
	sc.LeavePropagateDelay = c.LeavePropagateDelay
	sc.BroadcastTimeout = c.BroadcastTimeout
	sc.LogOutput = nil
	sc.Logger = stdlog
	return sc
}

// slogWriter turns the "[LEVEL] component: message" lines of Serf and
// memberlist into debug records of a slog.Logger, keeping their level as a field.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	w.l.Debug(msg, "serf_level", level)
	return len(p), nil
}
