package tunnel

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
)

// The plaintext VTEP (`encryption: none`, L2 only): a learning VXLAN switch port that speaks
// plain RFC 7348 over UDP, byte-compatible with the Linux kernel vxlan driver.
//
// Goroutines and queues of the flow (no queue between them; each owns one buffer):
//
//	tapLoop:   dev.Read(buf[8:]) → [ARP suppression: answer on dev] → FDB.Route(dst MAC)
//	           → write the 8-byte header into buf[0:8] → conn.WriteToUDPAddrPort to the
//	           owner, or to every remote of the VNI (head-end replication, flood budget)
//	udpLoop:   conn.ReadFromUDPAddrPort(buf) → header (I flag) → VNI check → FDB.Learn(src
//	           MAC, sender VTEP) → dev.Write(buf, offset 8)
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

// PlainStats are the VTEP's counters, one per drop reason.
type PlainStats struct {
	TxFrames, TxPackets, TxBytes uint64 // frames read from the device; UDP packets sent (after replication) and their bytes
	RxPackets, RxBytes           uint64 // frames written to the device
	DropShortFrame               uint64 // shorter than an Ethernet header (either direction)
	DropBadHeader                uint64 // shorter than 8 bytes or I flag clear
	DropWrongVNI                 uint64 // a VNI that is not ours
	DropFloodBudget              uint64
	DropNoRemote                 uint64
	SendErrors                   uint64 // UDP send failed (per copy)
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
	dropShort, dropHeader, dropVNI, dropFlood        atomic.Uint64
	dropNoRemote, sendErrs, devWriteErrs, readErrs   atomic.Uint64
	arpSuppressed                                    atomic.Uint64
}

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
	if cfg.VNI == 0 || cfg.VNI > MaxVNI {
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
		return nil, fmt.Errorf("plain vtep: listen on %s: %w", laddr, err)
	}
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
		TxFrames: v.txFrames.Load(), TxPackets: v.txPackets.Load(), TxBytes: v.txBytes.Load(),
		RxPackets: v.rxPackets.Load(), RxBytes: v.rxBytes.Load(),
		DropShortFrame: v.dropShort.Load(), DropBadHeader: v.dropHeader.Load(), DropWrongVNI: v.dropVNI.Load(),
		DropFloodBudget: v.dropFlood.Load(), DropNoRemote: v.dropNoRemote.Load(),
		SendErrors: v.sendErrs.Load(), DeviceWriteErrors: v.devWriteErrs.Load(), ReadErrors: v.readErrs.Load(),
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

// tapLoop: frames from the device out to the remote VTEPs.
func (v *PlainVTEP) tapLoop() {
	defer v.wg.Done()
	const off = VXLANHeaderSize
	buf := make([]byte, plainBufSize+off)
	reply := make([]byte, off+64)
	bufs, sizes := [][]byte{buf}, []int{0}
	replyBufs := [][]byte{nil}
	var lastLog time.Time
	arp := v.fdb.Config().ARPSuppression
	for {
		if _, err := v.dev.Read(bufs, sizes, off); err != nil {
			if !v.readFailed("device", err, &lastLog) {
				return
			}
			continue
		}
		frame := buf[off : off+sizes[0]]
		v.txFrames.Add(1)
		if len(frame) < ethernetHdrLen {
			v.dropShort.Add(1)
			continue
		}
		if arp {
			if n := v.fdb.ARPReply(reply[off:], frame); n > 0 {
				replyBufs[0] = reply[:off+n]
				if _, err := v.dev.Write(replyBufs, off); err != nil {
					v.devWriteErrs.Add(1)
				}
				v.arpSuppressed.Add(1)
				continue
			}
		}
		to, flood, err := v.fdb.Route(MAC(frame[0:6]))
		if err != nil {
			if errors.Is(err, ErrFloodBudget) {
				v.dropFlood.Add(1)
			} else {
				v.dropNoRemote.Add(1)
			}
			continue
		}
		pkt := buf[:off+len(frame)]
		putVXLAN(pkt, v.cfg.VNI, ProtoNone) // pure RFC 7348: I flag only, no GPE bits
		if flood == nil {
			v.send(pkt, to)
			continue
		}
		for _, r := range flood {
			v.send(pkt, r)
		}
	}
}

func (v *PlainVTEP) send(pkt []byte, to netip.AddrPort) {
	if _, err := v.conn.WriteToUDPAddrPort(pkt, to); err != nil {
		v.sendErrs.Add(1)
		return
	}
	v.txPackets.Add(1)
	v.txBytes.Add(uint64(len(pkt)))
}

// udpLoop: VXLAN packets from remote VTEPs into the device.
func (v *PlainVTEP) udpLoop() {
	defer v.wg.Done()
	buf := make([]byte, plainBufSize)
	wbufs := [][]byte{nil}
	var lastLog time.Time
	for {
		n, src, err := v.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !v.readFailed("udp", err, &lastLog) {
				return
			}
			continue
		}
		pkt := buf[:n]
		// RFC 7348 receive rules: the I flag must be set, reserved bits (GPE's P flag and
		// next-protocol byte included) are ignored.
		h, err := ParseVXLAN(pkt)
		if err != nil {
			v.dropHeader.Add(1)
			continue
		}
		if h.VNI != v.cfg.VNI {
			v.dropVNI.Add(1)
			continue
		}
		frame := pkt[VXLANHeaderSize:]
		if len(frame) < ethernetHdrLen {
			v.dropShort.Add(1)
			continue
		}
		v.fdb.Learn(MAC(frame[6:12]), v.senderVTEP(src))
		wbufs[0] = pkt
		if _, err := v.dev.Write(wbufs, VXLANHeaderSize); err != nil {
			v.devWriteErrs.Add(1)
			continue
		}
		v.rxPackets.Add(1)
		v.rxBytes.Add(uint64(len(frame)))
	}
}

// senderVTEP maps a UDP source to the VTEP key replies go to: a configured remote with that
// IP (whatever its port), else the IP at the configured VXLAN port.
func (v *PlainVTEP) senderVTEP(src netip.AddrPort) netip.AddrPort {
	a := src.Addr().Unmap()
	for _, r := range v.fdb.Remotes() {
		if r.Addr() == a {
			return r
		}
	}
	return netip.AddrPortFrom(a, v.cfg.Port)
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
