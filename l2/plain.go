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
