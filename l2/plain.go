package l2

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// The plaintext VTEP (`encryption: none`, L2 only): a learning VXLAN switch port that speaks
// plain RFC 7348 over UDP, byte-compatible with the Linux kernel vxlan driver.
//
// Goroutines and queues of the flow (no queue between them; each owns its buffers):
//
//	tapLoop:   dev.Read(buf[8:]), then TryRead of the frames already queued, each placed
//	           right after the previous packet → [ARP suppression: answer on dev] →
//	           FDB.Route(dst MAC) → 8-byte header written in front of the frame → a run of
//	           equal-sized packets to one remote leaves in one UDP_SEGMENT sendmsg; floods
//	           go to every remote of the VNI (head-end replication, flood budget)
//	udpLoop:   conn.ReadMsgUDPAddrPort (UDP_GRO: a run of datagrams of one sender) → sender
//	           a known remote (else dropped, unless LearnUnknownVTEPs) → per datagram:
//	           header (I flag) → VNI check → FDB.Learn(src MAC, sender VTEP), a refused MAC
//	           (pinned to another VTEP) dropped → dev.Write(buf, offset 8)
//	ageLoop:   FDB.Expire every few seconds
//
// Received frames are only ever written to the device, never re-flooded (split horizon), so
// a full mesh of head-end replicating VTEPs has no loops.
//
// A sender VTEP is keyed by its IP and the VXLAN port: the Linux driver sends from a source
// port hashed from the inner flow, so the UDP source port says nothing about where to reply.

// PlainConfig configures a PlainVTEP.
type PlainConfig struct {
	// VNI is the 24-bit VXLAN network identifier of this segment (1..16777215); packets for
	// any other VNI are dropped and counted.
	VNI uint32
	// Port is the UDP port to listen on and the default port of remotes. Default 4789 (IANA,
	// the Linux `dstport 4789`).
	Port uint16
	// ListenAddr, when valid, is the exact local address to bind (port 0: ephemeral), in place
	// of 0.0.0.0:Port (or [::]:Port when the remotes are IPv6). Tests use loopback addresses.
	ListenAddr netip.AddrPort
	// Remotes is the static flood list: the VTEPs of the VNI. A zero port means Port.
	// Gossip adds and removes members with AddRemote and RemoveRemote.
	Remotes []netip.AddrPort
	// FDB configures the forwarding database (ageing, bounds, flood budget, ARP suppression).
	FDB FDBConfig
	// LearnUnknownVTEPs accepts VXLAN packets from UDP sources whose IP is no remote of the
	// flood list (and learns their MACs behind them), as a Linux vxlan device with `learning`
	// does. Default false: a packet from an unknown source is dropped (unknown_vtep), so a
	// host that can reach the port cannot inject frames or steer the FDB. Plain VXLAN has no
	// authentication either way: this narrows who can, it does not make it secure.
	LearnUnknownVTEPs bool
	// DisableOffload turns off UDP segmentation (GSO) on send and UDP_GRO on receive, which
	// are used when the kernel has them (they change syscalls, never the bytes on the wire).
	DisableOffload bool
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

// DefaultPlainConfig returns the defaults: the IANA VXLAN port and DefaultFDBConfig. Set VNI
// (and Remotes) before NewPlainVTEP.
func DefaultPlainConfig() PlainConfig {
	return PlainConfig{
		// 4789: what `ip link add ... type vxlan dstport 4789` and VXLAN switches speak.
		Port: DefaultPlainPort,
		FDB:  DefaultFDBConfig(),
	}
}

// PlainStats are the VTEP's counters.
type PlainStats struct {
	// Drops counts dropped packets by reason name (peers.DropReason.String), under the same
	// names as the encrypted modes: malformed (a VXLAN header shorter than 8 bytes or without
	// the I flag, a frame shorter than an Ethernet header), wrong_vni, flood_capped (past
	// the flood budget), no_route (no remote to send to), send_failed (per copy),
	// unknown_vtep (from a UDP source that is no remote), not_allowed_source (a source MAC
	// pinned to another VTEP). Only nonzero reasons appear.
	Drops map[string]uint64

	TxFrames, TxPackets, TxBytes uint64 // frames read from the device; UDP packets sent (after replication) and their bytes
	TxSends                      uint64 // send syscalls (fewer than TxPackets when UDP segmentation coalesces)
	RxDatagrams                  uint64 // VXLAN packets received (a GRO read counts each)
	RxPackets, RxBytes           uint64 // frames written to the device
	DeviceWriteErrors            uint64
	ReadErrors                   uint64 // transient device or socket read errors
	ARPSuppressed                uint64 // ARP requests answered locally
	FDB                          FDBStats
}

// PlainVTEP is a plaintext RFC 7348 VXLAN tunnel endpoint over a TAP device.
type PlainVTEP struct {
	cfg  PlainConfig
	log  *slog.Logger
	dev  tun.Device
	conn *net.UDPConn
	fdb  *FDB[netip.AddrPort]

	startOnce, closeOnce sync.Once
	closed               chan struct{}
	wg                   sync.WaitGroup

	txFrames, txPackets, txBytes, rxPackets, rxBytes atomic.Uint64
	drops                                            peers.DropCounters
	devWriteErrs, readErrs                           atomic.Uint64
	arpSuppressed, rxDatagrams, txSends              atomic.Uint64

	gso atomic.Bool // UDP_SEGMENT sends; off after the kernel refuses one
	gro bool        // UDP_GRO enabled on conn
	// tapOffload: the device's TSO and checksum offload are on (plainOffloader): reads come
	// in batches with super-frames already cut into frames, writes are merged into TCP
	// super-frames by the device.
	tapOffload bool
}

// plainOffloader is a device with segmentation offload (tap.Device): EnableOffload makes
// Read cut TCP super-frames into frames (up to 64 per super-frame, so Read needs
// BatchSize buffers) and Write merge runs of segments of one flow, after checking their
// checksums, into super-frames.
type plainOffloader interface{ EnableOffload() error }

const (
	// plainBufSize holds the largest UDP payload, so no frame is ever truncated.
	plainBufSize = 1 << 16
	// DefaultPlainPort is the IANA VXLAN port (RFC 7348 §5), the Linux `dstport 4789`.
	DefaultPlainPort = 4789
)

// Named configuration errors of NewPlainVTEP.
var (
	ErrPlainVNI    = errors.New("plain vtep: vni must be between 1 and 16777215")
	ErrPlainFamily = errors.New("plain vtep: remotes and listen address must all be IPv4 or all IPv6")
)

// NewPlainVTEP binds the UDP socket and prepares the VTEP; Start runs it. It takes ownership
// of dev: Close closes it.
func NewPlainVTEP(cfg PlainConfig, dev tun.Device) (*PlainVTEP, error) {
	if cfg.VNI == 0 || cfg.VNI > vxlan.MaxVNI {
		return nil, ErrPlainVNI
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPlainPort
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	laddr := cfg.ListenAddr
	v6 := laddr.IsValid() && laddr.Addr().Is6() && !laddr.Addr().Is4In6()
	if !v6 {
		for _, r := range cfg.Remotes {
			v6 = v6 || r.Addr().Is6() && !r.Addr().Is4In6()
		}
	}
	if !laddr.IsValid() {
		unspec := netip.IPv4Unspecified()
		if v6 {
			unspec = netip.IPv6Unspecified()
		}
		laddr = netip.AddrPortFrom(unspec, cfg.Port)
	}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	for _, r := range append([]netip.AddrPort{laddr}, cfg.Remotes...) {
		if r.Addr().Unmap().Is6() != v6 {
			return nil, ErrPlainFamily
		}
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
	if err != nil {
		return nil, fmt.Errorf("plain vtep: listen on %s: %w (a kernel vxlan device or another VTEP may hold the port; remove it or choose another listen address)", laddr, err)
	}
	// Bursts of a TCP flow must not overflow the default ~200 KiB; best effort (capped by
	// net.core.rmem_max/wmem_max).
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	v := &PlainVTEP{
		cfg:    cfg,
		log:    cfg.Logger.With("vni", cfg.VNI),
		dev:    dev,
		conn:   conn,
		fdb:    NewFDB[netip.AddrPort](cfg.VNI, cfg.FDB),
		closed: make(chan struct{}),
	}
	for _, r := range cfg.Remotes {
		v.AddRemote(r)
	}
	v.gso.Store(!cfg.DisableOffload)
	v.gro = !cfg.DisableOffload && plainEnableGRO(conn)
	if o, ok := dev.(plainOffloader); ok && !cfg.DisableOffload && dev.BatchSize() >= plainMaxSegments {
		if err := o.EnableOffload(); err != nil {
			v.log.Warn("plain vxlan: device offload unavailable; frames are read one by one", "err", err)
		} else {
			v.tapOffload = true
		}
	}
	return v, nil
}

// Start runs the VTEP's goroutines until Close. Calling it again does nothing.
func (v *PlainVTEP) Start() {
	v.startOnce.Do(func() {
		v.wg.Add(3)
		go v.tapLoop()
		go v.udpLoop()
		go v.ageLoop()
		v.log.Info("plain vxlan vtep started", "listen", v.LocalAddr(), "remotes", len(v.fdb.Remotes()))
	})
}

// Close stops the loops, closes the socket and the device, and waits for the goroutines.
func (v *PlainVTEP) Close() error {
	var err error
	v.closeOnce.Do(func() {
		close(v.closed)
		err = errors.Join(v.conn.Close(), v.dev.Close())
		v.wg.Wait()
		v.log.Info("plain vxlan vtep stopped")
	})
	return err
}

// LocalAddr is the bound UDP address.
func (v *PlainVTEP) LocalAddr() netip.AddrPort {
	return v.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// AddRemote adds a VTEP to the flood list (a zero port means the configured Port).
func (v *PlainVTEP) AddRemote(r netip.AddrPort) { v.fdb.AddRemote(v.normalize(r)) }

// RemoveRemote removes a VTEP from the flood list and forgets the MACs behind it.
func (v *PlainVTEP) RemoveRemote(r netip.AddrPort) { v.fdb.RemoveRemote(v.normalize(r)) }

func (v *PlainVTEP) normalize(r netip.AddrPort) netip.AddrPort {
	if r.Port() == 0 {
		r = netip.AddrPortFrom(r.Addr(), v.cfg.Port)
	}
	return netip.AddrPortFrom(r.Addr().Unmap(), r.Port())
}

// FDB lists the forwarding database (for `weft fdb`).
func (v *PlainVTEP) FDB() []FDBEntry[netip.AddrPort] { return v.fdb.Entries() }

// ForwardingDB gives the agent the table itself, to seed static entries and neighbors from
// gossip.
func (v *PlainVTEP) ForwardingDB() *FDB[netip.AddrPort] { return v.fdb }

// Stats returns the counters.
func (v *PlainVTEP) Stats() PlainStats {
	return PlainStats{
		TxFrames: v.txFrames.Load(), TxPackets: v.txPackets.Load(), TxBytes: v.txBytes.Load(), TxSends: v.txSends.Load(),
		RxDatagrams: v.rxDatagrams.Load(), RxPackets: v.rxPackets.Load(), RxBytes: v.rxBytes.Load(),
		Drops:             v.drops.Snapshot(),
		DeviceWriteErrors: v.devWriteErrs.Load(), ReadErrors: v.readErrs.Load(),
		ARPSuppressed: v.arpSuppressed.Load(),
		FDB:           v.fdb.Stats(),
	}
}

func (v *PlainVTEP) isClosed() bool {
	select {
	case <-v.closed:
		return true
	default:
		return false
	}
}

// readFailed handles a read error: false ends the loop (closed), true retries after a
// transient error (counted, logged once per second at most).
func (v *PlainVTEP) readFailed(what string, err error, lastLog *time.Time) bool {
	if v.isClosed() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return false
	}
	v.readErrs.Add(1)
	if now := time.Now(); now.Sub(*lastLog) > time.Second {
		*lastLog = now
		v.log.Warn("plain vxlan: read failed", "from", what, "err", err)
	}
	time.Sleep(time.Millisecond) // a broken device must not spin a core
	return true
}

// plainTryReader is a device that can read a queued frame without blocking (tap.Device,
// tap.FrameDevice); the VTEP then gathers a burst of frames into one GSO send.
type plainTryReader interface {
	// TryRead reads one frame into b if one is queued; (0, nil) when none is.
	TryRead(b []byte) (int, error)
}

// plainMaxGSOBytes keeps a coalesced send under the largest UDP payload.
const plainMaxGSOBytes = 65000

// plainTx is the run of VXLAN packets gathered for one GSO send: contiguous in the buffer,
// one remote, all seg bytes long except possibly the last (which closes the run).
type plainTx struct {
	to         netip.AddrPort
	start, end int
	seg, count int
	closed     bool
}

// tapLoop: frames from the device out to the remote VTEPs. Each frame is read at an offset
// that leaves room for its VXLAN header, right after the previous packet, so a burst of
// frames to one remote is one contiguous buffer that leaves in one UDP_SEGMENT sendmsg.
func (v *PlainVTEP) tapLoop() {
	defer v.wg.Done()
	const hdr = vxlan.HeaderSize
	buf := make([]byte, plainBufSize+hdr)
	reply := make([]byte, hdr+64)
	oob := make([]byte, 64)
	bufs, sizes := [][]byte{buf}, []int{0}
	replyBufs := [][]byte{nil}
	var lastLog time.Time
	arp := v.fdb.Config().ARPSuppression
	tr, _ := v.dev.(plainTryReader)
	maxFrame := plainBufSize
	if mtu, err := v.dev.MTU(); err == nil && mtu > 0 && mtu+EthernetHeaderLen+2*vlanTagLen < plainBufSize {
		maxFrame = mtu + EthernetHeaderLen + 2*vlanTagLen
	}
	var tx plainTx
	// route remembers the unicast route of the last frame of this batch: the segments of a
	// super-frame share their destination, and one FDB lookup (lock, map, clock read) for
	// the batch replaces one per segment. Reset at every read, so it is never older than
	// the batch.
	var route struct {
		dst MAC
		to  netip.AddrPort
		ok  bool
	}
	var rbufs [][]byte // with tapOffload: the batch Read fills, each frame copied into buf after
	var rsizes []int
	if v.tapOffload {
		rbufs, rsizes = make([][]byte, v.dev.BatchSize()), make([]int, v.dev.BatchSize())
		for i := range rbufs {
			rbufs[i] = make([]byte, plainBufSize+hdr)
		}
	}

	// handle routes the frame read at buf[pos+hdr:pos+hdr+n]: drop, answer, flood or add to tx.
	handle := func(pos, n int) {
		frame := buf[pos+hdr : pos+hdr+n]
		v.txFrames.Add(1)
		if n < EthernetHeaderLen {
			v.drops.Add(peers.DropMalformed, 1)
			return
		}
		if arp {
			if m := v.fdb.ARPReply(reply[hdr:], frame); m > 0 {
				replyBufs[0] = reply[:hdr+m]
				if _, err := v.dev.Write(replyBufs, hdr); err != nil {
					v.devWriteErrs.Add(1)
				}
				v.arpSuppressed.Add(1)
				return
			}
		}
		dst := MAC(frame[0:6])
		to, flood, err := route.to, []netip.AddrPort(nil), error(nil)
		if !route.ok || route.dst != dst {
			to, flood, err = v.fdb.Route(dst)
			route.dst, route.to, route.ok = dst, to, err == nil && flood == nil
		}
		if err != nil {
			if errors.Is(err, ErrFloodBudget) {
				v.drops.Add(peers.DropFloodCapped, 1)
			} else {
				v.drops.Add(peers.DropNoRoute, 1)
			}
			return
		}
		pkt := buf[pos : pos+hdr+n]
		vxlan.Encode(pkt, v.cfg.VNI, vxlan.ProtoNone) // pure RFC 7348: I flag only, no GPE bits
		if flood != nil {
			v.flush(&tx, buf, oob) // keep frame order
			for _, r := range flood {
				v.send(pkt, r)
			}
			return
		}
		if tx.count > 0 && (tx.to != to || tx.closed || len(pkt) > tx.seg || tx.count == plainMaxSegments ||
			tx.end != pos || pos+len(pkt)-tx.start > plainMaxGSOBytes) {
			v.flush(&tx, buf, oob)
		}
		if tx.count == 0 {
			tx = plainTx{to: to, start: pos, seg: len(pkt)}
		}
		tx.end = pos + len(pkt)
		tx.count++
		tx.closed = len(pkt) < tx.seg
	}

	for v.tapOffload {
		k, err := v.dev.Read(rbufs, rsizes, hdr)
		route.ok = false
		if err != nil {
			if !v.readFailed("device", err, &lastLog) {
				return
			}
			continue
		}
		// The frames (a super-frame's segments among them) are gathered one after the other
		// into buf, each behind room for its header, so that a run to one remote is one
		// contiguous UDP_SEGMENT send; a full buf is sent first.
		pos := 0
		for i := range k {
			n := rsizes[i]
			if pos+hdr+n > len(buf) {
				v.flush(&tx, buf, oob)
				pos = 0
			}
			copy(buf[pos+hdr:], rbufs[i][hdr:hdr+n])
			handle(pos, n)
			pos += hdr + n
		}
		v.flush(&tx, buf, oob)
	}
	for {
		_, err := v.dev.Read(bufs, sizes, hdr)
		route.ok = false
		if err != nil {
			if !v.readFailed("device", err, &lastLog) {
				return
			}
			continue
		}
		handle(0, sizes[0])
		pos := hdr + sizes[0]
		for tr != nil && v.gso.Load() && pos+hdr+maxFrame <= len(buf) {
			n, err := tr.TryRead(buf[pos+hdr : pos+hdr+maxFrame])
			if err != nil || n == 0 {
				break // a real error shows again on the next blocking Read
			}
			handle(pos, n)
			pos += hdr + n
		}
		v.flush(&tx, buf, oob)
	}
}

// flush sends the gathered run: one datagram plainly, several with UDP_SEGMENT; when the
// kernel refuses segmentation, it turns GSO off for good and sends them one by one.
func (v *PlainVTEP) flush(tx *plainTx, buf, oob []byte) {
	if tx.count == 0 {
		return
	}
	defer func() { tx.count = 0 }()
	run := buf[tx.start:tx.end]
	if tx.count == 1 {
		v.send(run, tx.to)
		return
	}
	if v.gso.Load() {
		_, _, err := v.conn.WriteMsgUDPAddrPort(run, plainPutSegment(oob, tx.seg), tx.to)
		v.txSends.Add(1)
		if err == nil {
			v.txPackets.Add(uint64(tx.count))
			v.txBytes.Add(uint64(len(run)))
			return
		}
		if !plainGSOUnsupported(err) {
			v.drops.Add(peers.DropSendFailed, uint64(tx.count))
			return
		}
		v.gso.Store(false)
		v.log.Info("plain vxlan: UDP segmentation offload refused; sending datagrams one by one", "err", err)
	}
	for off := 0; off < len(run); off += tx.seg {
		v.send(run[off:min(off+tx.seg, len(run))], tx.to)
	}
}

func (v *PlainVTEP) send(pkt []byte, to netip.AddrPort) {
	_, err := v.conn.WriteToUDPAddrPort(pkt, to)
	v.txSends.Add(1)
	if err != nil {
		v.drops.Add(peers.DropSendFailed, 1)
		return
	}
	v.txPackets.Add(1)
	v.txBytes.Add(uint64(len(pkt)))
}

// plainRxHeadroom is the room a UDP read leaves in front of the packets, so that every
// frame of a GRO run has vnetHdrRoom bytes before it (the 8 of its own VXLAN header and the
// last 2 of the packet before, which is written by then) for the device's virtio-net header.
const (
	plainRxHeadroom = 2
	plainVnetRoom   = plainRxHeadroom + vxlan.HeaderSize // ≥ the 10-byte virtio_net_hdr
)

// udpLoop: VXLAN packets from remote VTEPs into the device. With UDP_GRO one read returns a
// run of datagrams of one sender, each seg bytes (the last maybe fewer); the frames of the
// run that pass the checks go to the device in one Write, which (with tapOffload) merges
// consecutive segments of a TCP flow into super-frames in place, after verifying their
// checksums (plain VXLAN has no AEAD: a forged segment must not ride on a merged frame
// the kernel trusts as checksummed).
func (v *PlainVTEP) udpLoop() {
	defer v.wg.Done()
	buf := make([]byte, plainRxHeadroom+plainBufSize)
	oob := make([]byte, 64)
	wbufs := make([][]byte, 0, plainMaxSegments)
	var lastLog time.Time
	for {
		n, oobn, _, src, err := v.conn.ReadMsgUDPAddrPort(buf[plainRxHeadroom:], oob)
		if err != nil {
			if !v.readFailed("udp", err, &lastLog) {
				return
			}
			continue
		}
		seg := n
		if v.gro {
			if s := plainGROSize(oob[:oobn]); s > 0 {
				seg = s
			}
		}
		// One read is one sender (a UDP_GRO run): map it to its VTEP once, and learn a source
		// MAC once per run rather than once per frame.
		sender, known := v.senderVTEP(src)
		if !known && !v.cfg.LearnUnknownVTEPs {
			k := uint64((n + seg - 1) / max(seg, 1))
			v.rxDatagrams.Add(k)
			v.drops.Add(peers.DropUnknownVTEP, k)
			continue
		}
		var learned plainLearned
		wbufs = wbufs[:0]
		for off := 0; off < n; off += seg {
			// buf[off:] keeps its capacity to the end of buf: the device appends merged
			// payloads into it (over the later packets it has consumed).
			pkt := buf[off : plainRxHeadroom+min(off+seg, n)]
			if v.accept(pkt[plainRxHeadroom:], sender, &learned) {
				if len(wbufs) == cap(wbufs) {
					v.write(wbufs)
					wbufs = wbufs[:0]
				}
				wbufs = append(wbufs, pkt)
			}
		}
		v.write(wbufs)
	}
}

// write writes the accepted frames (each bufs[i][plainVnetRoom:]) to the device.
func (v *PlainVTEP) write(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	k, err := v.dev.Write(bufs, plainVnetRoom)
	if err != nil {
		v.devWriteErrs.Add(uint64(len(bufs) - k))
	}
	for _, b := range bufs[:k] {
		v.rxPackets.Add(1)
		v.rxBytes.Add(uint64(len(b) - plainVnetRoom))
	}
}

// plainLearned is the source MAC an earlier frame of the same read taught the FDB.
type plainLearned struct {
	mac MAC
	ok  bool
}

// accept checks one VXLAN packet from the VTEP sender and learns its source MAC (unless an
// earlier frame of this read already did): true when its frame is to be written to the
// device.
func (v *PlainVTEP) accept(pkt []byte, sender netip.AddrPort, learned *plainLearned) bool {
	v.rxDatagrams.Add(1)
	// RFC 7348 receive rules: the I flag must be set, reserved bits (GPE's P flag and
	// next-protocol byte included) are ignored.
	h, err := vxlan.Parse(pkt)
	if err != nil {
		v.drops.Add(peers.DropMalformed, 1)
		return false
	}
	if h.VNI != v.cfg.VNI {
		v.drops.Add(peers.DropWrongVNI, 1)
		return false
	}
	frame := pkt[vxlan.HeaderSize:]
	if len(frame) < EthernetHeaderLen {
		v.drops.Add(peers.DropMalformed, 1)
		return false
	}
	src := MAC(frame[6:12])
	if !learned.ok || src != learned.mac {
		// Invalid and refused MACs are not remembered: each such frame is counted.
		learned.mac, learned.ok = src, v.fdb.Learn(src, sender)
	}
	if !learned.ok {
		// A multicast or zero source, or a MAC that gossip pins to another VTEP: the frame
		// would let the sender speak for it, so it is not delivered.
		if src.IsMulticast() || src.IsZero() {
			v.drops.Add(peers.DropMalformed, 1)
		} else {
			v.drops.Add(peers.DropNotAllowedSource, 1)
		}
		return false
	}
	return true
}

// senderVTEP maps a UDP source to the VTEP key replies go to: a remote of the flood list with
// that IP (whatever its port; known), else the IP at the configured VXLAN port (not known).
func (v *PlainVTEP) senderVTEP(src netip.AddrPort) (netip.AddrPort, bool) {
	a := src.Addr().Unmap()
	for _, r := range v.fdb.Remotes() {
		if r.Addr() == a {
			return r, true
		}
	}
	return netip.AddrPortFrom(a, v.cfg.Port), false
}

// ageLoop expires learned entries a few times per ageing period.
func (v *PlainVTEP) ageLoop() {
	defer v.wg.Done()
	every := min(max(v.fdb.Config().AgeingTime/10, time.Second), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-v.closed:
			return
		case <-t.C:
			v.fdb.Expire()
		}
	}
}
