package membership

// A Cluster runs one Serf instance and two goroutines of its own:
//
//	Serf/memberlist ──serf.Event──▶ eventLoop ──Event──▶ Events() (drop-oldest queue)
//	                                    │ kick
//	                                    ▼
//	                               allocLoop (also every ReconcileInterval)
//	                                    │ reconcile: decide the subnet, SetTags
//	                                    └──EventSubnetChanged/Conflict──▶ Events()
//
// Shutdown stops Serf, then both goroutines, then closes the Events channel.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Named errors of the Cluster.
var (
	// ErrTagBudget: the tags would not fit Serf's node metadata (memberlist.MetaMaxSize).
	ErrTagBudget = errors.New("tag budget exceeded")
	// ErrReservedTag: the key belongs to the Cluster (TagNodeInfo); use SetNodeInfo.
	ErrReservedTag = errors.New("reserved tag key")
	// ErrJoin: Join could not reach at least one address (see *JoinError).
	ErrJoin = errors.New("join failed")
)

// TagBudget is the most bytes Serf may spend on a member's encoded tags.
const TagBudget = memberlist.MetaMaxSize

// Status is a member's state as gossip knows it.
type Status uint8

// Member statuses (Serf's).
const (
	StatusNone Status = iota
	StatusAlive
	StatusLeaving
	StatusLeft
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	}
	return "none"
}

// Member is one host of the cluster.
type Member struct {
	// Name is the member's node name.
	Name string
	// Addr is the member's gossip address.
	Addr netip.AddrPort
	// Status is alive, leaving, left or failed.
	Status Status
	// Info is the decoded TagNodeInfo; valid only when InfoErr is nil.
	Info NodeInfo
	// InfoErr is why Info could not be decoded (ErrNoNodeInfo or a codec error).
	InfoErr error
	// Tags are all the member's tags, TagNodeInfo included. Do not modify.
	Tags map[string]string
}

// JoinError lists the addresses Join could not join. Joined says how many it did.
type JoinError struct {
	Joined int
	Addrs  []string
	Errs   []error
}

func (e *JoinError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "join: %d of %d address(es) failed:", len(e.Addrs), len(e.Addrs)+e.Joined)
	for i, a := range e.Addrs {
		msg := flattenError(e.Errs[i])
		msg = strings.ReplaceAll(msg, "failed to join "+a+": ", "")
		fmt.Fprintf(&b, " %s: %s", a, msg)
		h := keyHint(msg)
		if h == "" {
			h = "check the address and that its gossip port is reachable over TCP and UDP"
		}
		fmt.Fprintf(&b, " (%s)", h)
		b.WriteByte(';')
	}
	return strings.TrimSuffix(b.String(), ";")
}

// flattenError renders Serf's multierrors ("1 error occurred:\n\t* ...") on one line.
func flattenError(err error) string {
	if me, ok := err.(interface{ WrappedErrors() []error }); ok {
		var parts []string
		for _, e := range me.WrappedErrors() {
			parts = append(parts, flattenError(e))
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// keyHint translates gossip encryption errors into what to do. A member that cannot open
// what we send closes the connection without a word (it cannot answer without the key): an
// EOF while joining is the usual sign of a key mismatch.
func keyHint(msg string) string {
	switch {
	case strings.Contains(msg, "opens with no installed gossip key"), strings.HasSuffix(msg, "EOF"), strings.Contains(msg, "connection reset by peer"):
		return "the member closed the connection or sent what no key opens: this host's gossip.key is not the cluster's (compare `weft keyring list` on both hosts), or the member runs an older weft (upgrade all hosts together)"
	case strings.Contains(msg, "does not speak weft's gossip encryption"):
		return "the member runs an older weft, or has no gossip key: upgrade all hosts together and give every host the cluster's gossip key"
	case strings.Contains(msg, "invalid msgType (119)"), // 'w': weft's stream preamble
		strings.Contains(msg, "remote state is encrypted and encryption is not configured"):
		return "the cluster encrypts gossip and this host has no gossip key: set gossip.key"
	case strings.Contains(msg, "encryption is configured but remote state is not encrypted"):
		return "the cluster runs without a gossip key (insecure gossip) but this host has one"
	}
	return ""
}

// Is makes errors.Is(err, ErrJoin) true.
func (e *JoinError) Is(target error) bool { return target == ErrJoin }

// Cluster is this host's membership in the gossip cluster.
type Cluster struct {
	cfg        Config
	log        *slog.Logger
	serf       *serf.Serf
	serfEvents chan serf.Event
	keyring    *Keyring     // nil with insecure gossip
	drops      dropCounters // the transport's drops
	events     *eventQueue
	pool       pool
	kick       chan struct{}
	done       chan struct{}
	wg         sync.WaitGroup
	stopOnce   sync.Once
	alloc      allocMemory // reconcile's memory (subnet.go); allocator goroutine only

	mu     sync.Mutex // guards the fields below and serializes SetTags
	tags   map[string]string
	info   NodeInfo
	status SubnetStatus
	err    error
}

// New validates cfg, starts gossip and announces this host. It does not join
// anyone: call Join. Shutdown releases it.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kr, err := openKeyring(&cfg)
	if err != nil {
		return nil, err
	}
	p, _ := newPool(cfg.ClusterCIDR, cfg.SubnetBits, cfg.SubnetMin, cfg.SubnetMax) // checked by validate
	c := &Cluster{
		cfg:        cfg,
		log:        cfg.Logger.With("member", cfg.NodeName),
		serfEvents: make(chan serf.Event, 256),
		events:     newEventQueue(cfg.EventBuffer),
		pool:       p,
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	info := cfg.Node
	info.Static = cfg.StaticSubnet.IsValid()
	info.StaticSince = 0
	if info.Static {
		info.StaticSince = time.Now().UnixMilli()
	}
	info.Subnet = c.initialSubnet()
	tag, err := info.EncodeTag()
	if err != nil {
		return nil, fmt.Errorf("%w: node info: %w", ErrConfig, err)
	}
	c.info = info
	c.tags = map[string]string{TagNodeInfo: tag}

	var tr *sealedTransport
	if kr == nil {
		c.log.Warn("gossip is NOT encrypted (insecure gossip): anyone who can reach the gossip port can join")
	} else {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{cfg.BindAddr}, BindPort: cfg.BindPort, Logger: cfg.stdLogger(),
		})
		if err != nil {
			return nil, fmt.Errorf("gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
		}
		if cfg.BindPort == 0 { // memberlist fills these only for a transport of its own
			cfg.BindPort = nt.GetAutoBindPort()
			if cfg.AdvertisePort == 0 {
				cfg.AdvertisePort = cfg.BindPort
			}
		}
		c.cfg.BindPort, c.cfg.AdvertisePort = cfg.BindPort, cfg.AdvertisePort
		tr = newSealedTransport(nt, kr, &c.drops)
		c.keyring = kr
	}
	var mlTransport memberlist.Transport
	if tr != nil {
		mlTransport = tr
	}
	s, err := serf.Create(cfg.serfConfig(mlTransport, c.serfEvents, c.tags))
	if err != nil {
		if tr != nil {
			_ = tr.Shutdown()
		}
		return nil, fmt.Errorf("serf.Create (gossip on %s:%d): %w", cfg.BindAddr, cfg.BindPort, err)
	}
	c.serf = s
	if !info.Static {
		if err := saveSubnet(cfg.StateDir, info.Subnet); err != nil {
			c.log.Warn("persist subnet", "subnet", info.Subnet, "err", err)
		}
	}
	c.wg.Add(2)
	go c.eventLoop()
	go c.allocLoop()
	c.log.Info("gossip started", "addr", c.LocalMember().Addr, "subnet", info.Subnet, "encrypted", kr != nil)
	return c, nil
}

// Join contacts each address (host:port) and merges state with it. It returns
// how many were joined; the error, a *JoinError (errors.Is(err, ErrJoin)), names
// every address that failed, even when others succeeded.
func (c *Cluster) Join(addrs []string) (int, error) {
	je := &JoinError{}
	for _, a := range addrs {
		n, err := c.serf.Join([]string{a}, true)
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("no member contacted")
			}
			je.Addrs = append(je.Addrs, a)
			je.Errs = append(je.Errs, err)
			continue
		}
		je.Joined += n
	}
	c.kickAlloc()
	if len(je.Addrs) == 0 {
		c.log.Info("joined", "addrs", addrs)
		return je.Joined, nil
	}
	c.log.Error("join failed: check the addresses, that their gossip port is reachable (TCP and UDP) and that every host has the same gossip key",
		"failed", je.Addrs, "joined", je.Joined, "err", je.Error())
	return je.Joined, je
}

// Leave announces a graceful leave and waits (LeavePropagateDelay) for it to
// spread: the others see this member as left, not failed. Call Shutdown after.
func (c *Cluster) Leave() error {
	if err := c.serf.Leave(); err != nil {
		return fmt.Errorf("serf.Leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without announcing a leave (the others will declare
// this member failed), stops the Cluster's goroutines and closes Events.
// It is safe to call more than once.
func (c *Cluster) Shutdown() error {
	var err error
	c.stopOnce.Do(func() {
		err = c.serf.Shutdown()
		close(c.done)
		c.wg.Wait()
		close(c.events.ch)
		if err != nil {
			err = fmt.Errorf("serf.Shutdown: %w", err)
		}
	})
	return err
}

// Events delivers membership changes, the local member's included (compare
// Event.Member.Name with LocalMember().Name). The channel is buffered
// (Config.EventBuffer); when full the oldest event is dropped (DroppedEvents
// counts them), so Members is the truth. With SnapshotPath set, Serf's
// snapshotter also drops events when the Cluster's own intake (256) is full.
// Closed by Shutdown.
func (c *Cluster) Events() <-chan Event { return c.events.ch }

// DroppedEvents counts the events dropped because the consumer fell behind.
func (c *Cluster) DroppedEvents() uint64 { return c.events.dropped.Load() }

// Members returns every member known, the local one included, left and failed
// ones until they are reaped.
func (c *Cluster) Members() []Member {
	ms := c.serf.Members()
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = c.member(m)
	}
	return out
}

// LocalMember returns this host as the others see it.
func (c *Cluster) LocalMember() Member { return c.member(c.serf.LocalMember()) }

// LocalNode returns what this host announces in TagNodeInfo.
func (c *Cluster) LocalNode() NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Subnet returns the subnet this host announces; the zero Prefix while it has
// none (see SubnetStatus and Err).
func (c *Cluster) Subnet() netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.Subnet
}

// SubnetStatus says whether the subnet is usable.
func (c *Cluster) SubnetStatus() SubnetStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Err returns why this host has no usable subnet (ErrSubnetConflict,
// ErrNoFreeSubnet), or nil.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// SetTag sets one tag (an empty value deletes it) and gossips the new tag map.
// It fails with ErrTagBudget, leaving the tags as they were, when Serf's
// encoding of the whole map would exceed TagBudget bytes.
func (c *Cluster) SetTag(key, value string) error {
	if key == TagNodeInfo {
		return fmt.Errorf("%w: %q is the node info; use SetNodeInfo", ErrReservedTag, key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := maps.Clone(c.tags)
	if value == "" {
		delete(next, key)
	} else {
		next[key] = value
	}
	return c.setTagsLocked(next)
}

// TagBytes returns how many bytes of TagBudget the current tags use.
func (c *Cluster) TagBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return EncodedTagsSize(c.tags)
}

// SetNodeInfo announces n. Its Subnet, Static and StaticSince are ignored:
// the Cluster owns them.
func (c *Cluster) SetNodeInfo(n NodeInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n.Subnet, n.Static, n.StaticSince = c.info.Subnet, c.info.Static, c.info.StaticSince
	return c.setNodeInfoLocked(n)
}

func (c *Cluster) setNodeInfoLocked(n NodeInfo) error {
	tag, err := n.EncodeTag()
	if err != nil {
		return err
	}
	next := maps.Clone(c.tags)
	next[TagNodeInfo] = tag
	if err := c.setTagsLocked(next); err != nil {
		return err
	}
	c.info = n
	return nil
}

// setTagsLocked checks the budget and hands next to Serf, which keeps the map:
// next must not be modified afterwards.
func (c *Cluster) setTagsLocked(next map[string]string) error {
	if n := EncodedTagsSize(next); n > TagBudget {
		return fmt.Errorf("%w: the tags would take %d bytes of %d", ErrTagBudget, n, TagBudget)
	}
	if err := c.serf.SetTags(next); err != nil && !maps.Equal(c.serf.LocalMember().Tags, next) {
		return fmt.Errorf("serf.SetTags: %w", err)
	} else if err != nil {
		// Serf waits for the update's broadcast to go out and gives up after its broadcast
		// timeout on a loaded host, but the local tags changed and spread with the next
		// gossip: the tags are set (an agent starting among a hundred on two cores saw
		// this at start and exited).
		c.log.Debug("tag update announced, its broadcast was slow", "err", err)
	}
	c.tags = next
	return nil
}

// EncodedTagsSize is the size of tags in Serf's node metadata, computed as
// Serf's encodeTags does (protocol ≥ 3): a magic byte, then the msgpack map.
func EncodedTagsSize(tags map[string]string) int {
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(tags); err != nil {
		panic(fmt.Sprintf("msgpack of a string map: %v", err)) // as Serf does
	}
	return 1 + buf.Len()
}

func (c *Cluster) member(m serf.Member) Member {
	addr, _ := netip.AddrFromSlice(m.Addr)
	mem := Member{
		Name:   m.Name,
		Addr:   netip.AddrPortFrom(addr.Unmap(), m.Port),
		Status: Status(m.Status), // same numbering as serf.MemberStatus
		Tags:   m.Tags,
	}
	if t, ok := m.Tags[TagNodeInfo]; ok {
		mem.Info, mem.InfoErr = DecodeNodeInfo(t)
	} else {
		mem.InfoErr = ErrNoNodeInfo
	}
	return mem
}

func (c *Cluster) kickAlloc() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// eventLoop translates Serf's member events; it never blocks on the consumer.
func (c *Cluster) eventLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case e := <-c.serfEvents:
			if ue, ok := e.(serf.UserEvent); ok {
				c.events.send(Event{Type: EventUser, Name: ue.Name, Payload: ue.Payload})
				continue
			}
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			var typ EventType
			switch me.Type {
			case serf.EventMemberJoin:
				typ = EventJoin
			case serf.EventMemberUpdate:
				typ = EventUpdate
			case serf.EventMemberLeave:
				typ = EventLeave
			case serf.EventMemberFailed:
				typ = EventFailed
			case serf.EventMemberReap:
				typ = EventReap
			default:
				continue
			}
			for _, m := range me.Members {
				mem := c.member(m)
				if mem.InfoErr != nil && typ != EventReap && typ != EventLeave && typ != EventFailed {
					c.log.Warn("member announces no usable node info", "peer", mem.Name, "err", mem.InfoErr)
				}
				c.events.send(Event{Type: typ, Member: mem})
			}
			c.kickAlloc()
		}
	}
}

// allocLoop runs reconcile on member events and every ReconcileInterval.
func (c *Cluster) allocLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-t.C:
		}
		c.reconcile()
	}
}
