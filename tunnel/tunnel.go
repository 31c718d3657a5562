package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// Tunnel is one encrypted overlay datapath: a device, a bind and a peer table.
//
// Goroutines after Up: one outbound loop (device → peers), one inbound loop per bind
// receive function (peers → device), one handshake worker that also runs the timers, and
// one that drains device events. Close stops them all.
type Tunnel struct {
	cfg    Config
	log    *slog.Logger
	dev    tun.Device
	bind   conn.Bind
	table  *peers.Table
	router Router
	pol    Policy // never nil: allowAll without a policy
	pool   *bufPool
	owned  ownedBufs // the loops' own batches, outside the Go heap (pools.go)

	devBatch  int // dev.BatchSize(): buffers per Read
	bindBatch int // bind.BatchSize(): buffers per receive and at most per Send

	// workers share each batch's AEAD (parallel.go): the loop and workers-1 helpers, which
	// take offers; parallelBatches counts the batches shared.
	workers         int
	offers          chan cryptoOffer
	parallelBatches atomic.Uint64

	// partialDev is dev when it hands over and takes partial inner checksums (partial.go);
	// nil otherwise. csumBits is what every data packet's VXLAN header says of this side
	// (vxlan.CsumAccepted with partialDev). partialSent and partialRecv count the packets
	// sent and delivered with their checksum left partial.
	partialDev               partialDevice
	csumBits                 byte
	partialSent, partialRecv atomic.Uint64

	drops          peers.DropCounters
	handshakesSent atomic.Uint64
	keepalivesSent atomic.Uint64
	// noReplyHandshakes counts handshakes the no-reply timer started (timers.go).
	noReplyHandshakes atomic.Uint64
	// Path MTU (pmtu.go): probes sent, path MTU changes, ICMP errors written into the
	// device, ICMP errors not written (rate limit), errors about datagrams ignored.
	probesSent, pmtuChanges, icmpSent, icmpLimited, pmtuIgnored atomic.Uint64
	// pmtu is each peer's path-MTU search, owned by the handshake worker.
	pmtu map[*peers.Peer]*pmtuState

	hsMsgs chan hsMessage // received handshake messages for the worker
	hsReqs chan hsRequest // initiations and pending flushes asked by the loops

	// Owned by the handshake worker: the clock of the cookie-mode hysteresis (tests set
	// it) and the unix nanos until which the tunnel counts as under load.
	now            func() time.Time
	underLoadUntil int64

	mu      sync.Mutex
	up      bool
	closed  atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
}

// offloader is a device whose segmentation offload New turns on (tap.Device): Read then cuts
// super-frames into up to 64 frames, which the loop's batch of dev.BatchSize buffers holds.
type offloader interface{ EnableOffload() error }

// checksumTruster is a device whose GRO on write can skip verifying the TCP checksums of
// the segments it merges (tap.Device): the loop writes only frames the AEAD authenticated,
// so a wrong checksum would be the authenticated peer's own doing.
type checksumTruster interface{ TrustWrittenChecksums() }

// ErrAlreadyUp is returned by a second Up.
var ErrAlreadyUp = errors.New("tunnel: already up")

// New validates cfg and returns a Tunnel over dev, bind and table. The Tunnel takes
// ownership of dev and bind (Close closes them); table stays the caller's.
func New(cfg Config, dev tun.Device, bind conn.Bind, table *peers.Table) (*Tunnel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if dev == nil || bind == nil || table == nil {
		return nil, fmt.Errorf("%w: dev, bind and table are required", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o, ok := dev.(offloader); ok {
		if err := o.EnableOffload(); err != nil {
			log.Warn("device offload unavailable; frames are read one by one", "err", err)
		}
	}
	if tw, ok := dev.(checksumTruster); ok {
		tw.TrustWrittenChecksums() // every frame the loop writes was opened by the AEAD
	}
	t := &Tunnel{
		cfg:       cfg,
		log:       log,
		dev:       dev,
		bind:      bind,
		table:     table,
		router:    cfg.Router,
		pool:      newBufPool(),
		devBatch:  max(1, dev.BatchSize()),
		bindBatch: max(1, bind.BatchSize()),
		workers:   cryptoWorkers(cfg.CryptoWorkers),
		hsMsgs:    make(chan hsMessage, cfg.HandshakeQueueLen),
		hsReqs:    make(chan hsRequest, 256),
		stop:      make(chan struct{}),
		now:       time.Now,
		pmtu:      make(map[*peers.Peer]*pmtuState),
	}
	if t.router == nil {
		t.router = NewL3Router(table)
	}
	if pd, ok := dev.(partialDevice); ok && pd.PartialChecksums() {
		t.partialDev, t.csumBits = pd, vxlan.CsumAccepted
	}
	switch {
	case cfg.Policy == nil:
		t.pol = allowAll{}
	case cfg.NextProtoL2:
		t.pol = l2Policy{cfg.Policy}
	default:
		t.pol = cfg.Policy
	}
	return t, nil
}

// Table returns the peer table the tunnel routes over.
func (t *Tunnel) Table() *peers.Table { return t.table }

// Up opens the bind on port (0: any) and starts the loops. It returns the port bound.
func (t *Tunnel) Up(port uint16) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return 0, net.ErrClosed
	}
	if t.up {
		return 0, ErrAlreadyUp
	}
	fns, actual, err := t.bind.Open(port)
	if err != nil {
		return 0, fmt.Errorf("tunnel: listen on UDP port %d: %w", port, err)
	}
	t.up = true
	t.startCryptoHelpers()
	t.wg.Add(3 + len(fns))
	go t.routineOutbound()
	for _, fn := range fns {
		go t.routineInbound(fn)
	}
	go t.routineHandshake()
	go t.routineEvents()
	t.log.Info("tunnel up", "port", actual, "vni", t.cfg.VNI, "mtu", t.cfg.MTU,
		"dev_batch", t.devBatch, "bind_batch", t.bindBatch, "crypto_workers", t.workers)
	return actual, nil
}

// Close stops the loops, closes the bind and the device and waits for every goroutine.
// Packets still queued for handshakes are dropped. Idempotent.
func (t *Tunnel) Close() error {
	var err error
	t.closeMu.Do(func() {
		t.mu.Lock()
		t.closed.Store(true)
		close(t.stop)
		t.mu.Unlock()
		err = errors.Join(t.bind.Close(), t.dev.Close())
		t.wg.Wait()
		t.owned.free() // every loop has returned: nothing uses them now
		var queued [][]byte
		for _, p := range t.table.Peers() {
			queued = p.Session().Drain(queued[:0])
			for _, b := range queued {
				t.pool.put(b)
			}
		}
	})
	return err
}

// routineEvents drains the device's events (wireguard-go devices block without a reader).
func (t *Tunnel) routineEvents() {
	defer t.wg.Done()
	ev := t.dev.Events()
	for {
		select {
		case <-t.stop:
			return
		case e, ok := <-ev:
			if !ok {
				return
			}
			t.log.Debug("device event", "event", int(e))
		}
	}
}

// endpointOf returns the conn.Endpoint for p, parsing and caching it on first use.
// Returns nil when p has no endpoint.
func (t *Tunnel) endpointOf(p *peers.Peer) conn.Endpoint {
	e := p.LoadEndpoint()
	if e == nil || !e.Addr.IsValid() {
		return nil
	}
	if ep, ok := e.Handle.(conn.Endpoint); ok {
		return ep
	}
	ep, err := t.bind.ParseEndpoint(e.Addr.String())
	if err != nil {
		return nil
	}
	p.CompareAndSwapEndpoint(e, &peers.Endpoint{Addr: e.Addr, Handle: ep})
	return ep
}

// addrPortOf returns the UDP address of a received packet's endpoint without allocating
// for wireguard-go's StdNetEndpoint (which embeds netip.AddrPort).
func addrPortOf(ep conn.Endpoint) netip.AddrPort {
	if ap, ok := ep.(interface{ Port() uint16 }); ok {
		return netip.AddrPortFrom(ep.DstIP(), ap.Port())
	}
	a, _ := netip.ParseAddrPort(ep.DstToString())
	return a
}

// roam makes ep the endpoint of p when it differs (an authenticated packet came from it).
func (t *Tunnel) roam(p *peers.Peer, ep conn.Endpoint) {
	if ep == nil {
		return
	}
	ap := addrPortOf(ep)
	cur := p.LoadEndpoint()
	if cur != nil && cur.Addr == ap && cur.Handle != nil {
		return
	}
	if !ap.IsValid() {
		return
	}
	if p.CompareAndSwapEndpoint(cur, &peers.Endpoint{Addr: ap, Handle: ep}) && (cur == nil || cur.Addr != ap) {
		t.log.Debug("peer endpoint", "peer", p.Key().String(), "endpoint", ap.String())
	}
}
