package membership

// weft's gossip encryption: a memberlist.Transport that wraps memberlist's NetTransport and
// seals every packet and stream with this host's Keyring, so that memberlist and Serf run
// with no keyring of their own. Serf then answers every keyring query (_serf_install-key,
// _serf_use-key, _serf_remove-key, _serf_list-keys) with "encryption not enabled": no
// gossip member can change another host's keys (ARCHITECTURE.md, Decisions).
//
// AEAD: XChaCha20-Poly1305 (golang.org/x/crypto), a fresh random 24-byte nonce per packet
// and per record, so one key seals any number of messages without nonce bookkeeping.
//
//	packet:  'W' '1' | nonce(24) | seal(payload, AAD = packetAAD)
//	stream:  each side first sends streamMagic | its random 16-byte stream id, then records
//	record:  len(4, big endian) | nonce(24) | seal(chunk, AAD = streamAAD | dialer id |
//	         acceptor id | sender role | sequence number(8))
//
// Both ids and the sender's role and sequence number are authenticated with every record:
// a record moved to another stream, reflected back, reordered, dropped or replayed from an
// earlier stream does not open. The primary key seals; every installed key is tried on
// receive (rotation). Input that does not open is dropped and counted (TransportDrops); a
// stream with one bad record is broken (its reads fail), never resynchronised.
//
// Limitations: a captured packet can be replayed (as with memberlist's own encryption;
// memberlist tolerates duplicate UDP packets by design), and a stream may be cut short
// (memberlist's messages are length-delimited, so a cut message fails to decode).

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	nonceSize     = chacha20poly1305.NonceSizeX
	tagSize       = chacha20poly1305.Overhead
	streamIDSize  = 16
	maxRecordText = 64 << 10 // plaintext bytes per stream record
	// PacketOverhead is what sealing adds to a gossip packet; memberlist's UDP buffer is
	// shrunk by it so that sealed packets keep memberlist's size.
	PacketOverhead = 2 + nonceSize + tagSize // len(packetMagic) + nonce + tag
	recordOverhead = 4 + nonceSize + tagSize
)

var (
	packetMagic = []byte("W1")
	packetAAD   = []byte("weft gossip packet v1")
	streamMagic = []byte("weft gossip stream v1\x00")
	streamAAD   = []byte("weft gossip record v1")
)

// Drop reasons of the transport (TransportDrops keys).
const (
	DropPacketMalformed = "packet_malformed" // too short or not weft's packet format
	DropPacketKey       = "packet_no_key"    // no installed key opens it (wrong key or tampered)
	DropStreamHandshake = "stream_handshake" // the stream did not start with weft's preamble
	DropStreamMalformed = "stream_malformed" // a record length out of bounds
	DropStreamKey       = "stream_no_key"    // a record no installed key opens (wrong key, tampered, reordered, spliced)
)

var dropReasons = []string{DropPacketMalformed, DropPacketKey, DropStreamHandshake, DropStreamMalformed, DropStreamKey}

type dropCounters struct{ n [5]atomic.Uint64 }

func (d *dropCounters) add(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			d.n[i].Add(1)
		}
	}
}

func (d *dropCounters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(dropReasons))
	for i, r := range dropReasons {
		m[r] = d.n[i].Load()
	}
	return m
}

// errStream is every failure of a sealed stream.
var errStream = errors.New("gossip stream")

// sealedTransport is memberlist's NetTransport with every byte sealed by a Keyring.
type sealedTransport struct {
	inner   memberlist.NodeAwareTransport
	kr      *Keyring
	drops   *dropCounters
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*sealedTransport)(nil)

func newSealedTransport(inner memberlist.NodeAwareTransport, kr *Keyring, drops *dropCounters) *sealedTransport {
	t := &sealedTransport{
		inner: inner, kr: kr, drops: drops,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	t.wg.Add(2)
	go t.packetLoop()
	go t.streamLoop()
	return t
}

func (t *sealedTransport) packetLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case p := <-t.inner.PacketCh():
			buf, reason := openPacket(t.kr, p.Buf)
			if reason != "" {
				t.drops.add(reason)
				continue
			}
			select {
			case t.packets <- &memberlist.Packet{Buf: buf, From: p.From, Timestamp: p.Timestamp}:
			case <-t.done:
				return
			}
		}
	}
}

func (t *sealedTransport) streamLoop() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case c := <-t.inner.StreamCh():
			select {
			case t.streams <- newSealedConn(c, t.kr, t.drops, false):
			case <-t.done:
				c.Close()
				return
			}
		}
	}
}

// sealPacket returns b sealed with the primary key.
func sealPacket(kr *Keyring, b []byte) ([]byte, error) {
	primary, _ := kr.snapshot()
	out := make([]byte, len(packetMagic)+nonceSize, PacketOverhead+len(b))
	copy(out, packetMagic)
	if _, err := rand.Read(out[len(packetMagic):]); err != nil {
		return nil, err
	}
	return primary.Seal(out, out[len(packetMagic):], b, packetAAD), nil
}

// openPacket opens a sealed packet with any installed key; reason names why it cannot.
func openPacket(kr *Keyring, b []byte) (_ []byte, reason string) {
	if len(b) < PacketOverhead || !bytes.Equal(b[:len(packetMagic)], packetMagic) {
		return nil, DropPacketMalformed
	}
	nonce, ct := b[len(packetMagic):len(packetMagic)+nonceSize], b[len(packetMagic)+nonceSize:]
	_, all := kr.snapshot()
	for _, a := range all {
		if pt, err := a.Open(nil, nonce, ct, packetAAD); err == nil {
			return pt, ""
		}
	}
	return nil, DropPacketKey
}

func (t *sealedTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *sealedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *sealedTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	sealed, err := sealPacket(t.kr, b)
	if err != nil {
		return time.Time{}, err
	}
	return t.inner.WriteToAddress(sealed, addr)
}

func (t *sealedTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *sealedTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *sealedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *sealedTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return newSealedConn(c, t.kr, t.drops, true), nil
}

func (t *sealedTransport) Shutdown() error {
	err := t.inner.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}

// sealedConn is a stream of sealed records over a connection. The preamble exchange runs on
// the first Read or Write (both sides write theirs before reading, so it cannot deadlock)
// under the connection's deadlines, which memberlist sets before it uses a stream.
type sealedConn struct {
	net.Conn
	kr     *Keyring
	drops  *dropCounters
	dialer bool

	hsMu  sync.Mutex
	hsErr error
	hsOK  bool
	aad   []byte // streamAAD | dialer id | acceptor id; role and sequence appended per record

	rmu  sync.Mutex
	rseq uint64
	rbuf []byte // opened bytes not yet read
	rerr error  // sticky: a broken stream stays broken

	wmu  sync.Mutex
	wseq uint64
}

func newSealedConn(c net.Conn, kr *Keyring, drops *dropCounters, dialer bool) *sealedConn {
	return &sealedConn{Conn: c, kr: kr, drops: drops, dialer: dialer}
}

func (c *sealedConn) handshake() error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsOK || c.hsErr != nil {
		return c.hsErr
	}
	var own [streamIDSize]byte
	if _, err := rand.Read(own[:]); err != nil {
		c.hsErr = err
		return err
	}
	if _, err := c.Conn.Write(append(append([]byte(nil), streamMagic...), own[:]...)); err != nil {
		c.hsErr = fmt.Errorf("%w: send preamble: %w", errStream, err)
		return c.hsErr
	}
	peer := make([]byte, len(streamMagic)+streamIDSize)
	if _, err := io.ReadFull(c.Conn, peer); err != nil {
		c.hsErr = fmt.Errorf("%w: read preamble: %w", errStream, err)
		if !errors.Is(err, io.EOF) && !isTimeout(err) {
			c.drops.add(DropStreamHandshake)
		}
		return c.hsErr
	}
	if !bytes.Equal(peer[:len(streamMagic)], streamMagic) {
		c.drops.add(DropStreamHandshake)
		c.hsErr = fmt.Errorf("%w: the peer does not speak weft's gossip encryption (an older weft? upgrade every host together) or has no gossip key", errStream)
		return c.hsErr
	}
	dialerID, acceptorID := own[:], peer[len(streamMagic):]
	if !c.dialer {
		dialerID, acceptorID = acceptorID, dialerID
	}
	c.aad = append(append(append([]byte(nil), streamAAD...), dialerID...), acceptorID...)
	c.hsOK = true
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// recordAAD is the stream's AAD with the sender's role and the record's sequence number.
func (c *sealedConn) recordAAD(fromDialer bool, seq uint64) []byte {
	aad := make([]byte, len(c.aad), len(c.aad)+9)
	copy(aad, c.aad)
	role := byte(1)
	if fromDialer {
		role = 0
	}
	aad = append(aad, role)
	return binary.BigEndian.AppendUint64(aad, seq)
}

func (c *sealedConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	primary, _ := c.kr.snapshot()
	var out []byte
	for rest := p; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxRecordText)]
		rest = rest[len(chunk):]
		start := len(out)
		out = append(out, make([]byte, 4+nonceSize)...)
		binary.BigEndian.PutUint32(out[start:], uint32(nonceSize+len(chunk)+tagSize))
		nonce := out[start+4 : start+4+nonceSize]
		if _, err := rand.Read(nonce); err != nil {
			return 0, err
		}
		out = primary.Seal(out, nonce, chunk, c.recordAAD(c.dialer, c.wseq))
		c.wseq++
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *sealedConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rbuf) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if err := c.readRecord(); err != nil {
			c.rerr = err // even a deadline: a record may be half read
		}
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

// readRecord reads and opens the next record into rbuf. rmu is held.
func (c *sealedConn) readRecord() error {
	var hdr [4]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		return err // io.EOF at a record boundary is the stream's end
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < nonceSize+tagSize || n > nonceSize+maxRecordText+tagSize {
		c.drops.add(DropStreamMalformed)
		return fmt.Errorf("%w: record of %d bytes", errStream, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.Conn, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	aad := c.recordAAD(!c.dialer, c.rseq)
	_, all := c.kr.snapshot()
	for _, a := range all {
		// Not in place: a failed Open clears its output, and the next key needs the input.
		if pt, err := a.Open(nil, body[:nonceSize], body[nonceSize:], aad); err == nil {
			c.rseq++
			c.rbuf = pt
			return nil
		}
	}
	c.drops.add(DropStreamKey)
	return fmt.Errorf("%w: record %d opens with no installed gossip key (wrong key, or tampered)", errStream, c.rseq)
}

// SealGossip makes ml, a memberlist config for a Serf member that a program runs itself (a
// test playing a hostile member, say), speak weft's gossip encryption with key: it binds
// ml.BindAddr:ml.BindPort (0: a free port, written back into ml), installs the transport
// and shrinks the UDP buffer by the sealing overhead. ml.Keyring must stay nil.
func SealGossip(ml *memberlist.Config, key []byte) error {
	kr, err := NewKeyring([][]byte{key}, "")
	if err != nil {
		return err
	}
	logger := ml.Logger
	if logger == nil {
		out := ml.LogOutput
		if out == nil {
			out = os.Stderr
		}
		logger = log.New(out, "", log.LstdFlags)
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{ml.BindAddr}, BindPort: ml.BindPort, Logger: logger})
	if err != nil {
		return err
	}
	if ml.BindPort == 0 {
		ml.BindPort = nt.GetAutoBindPort()
		if ml.AdvertisePort == 0 {
			ml.AdvertisePort = ml.BindPort
		}
	}
	ml.Transport = newSealedTransport(nt, kr, new(dropCounters))
	ml.UDPBufferSize -= PacketOverhead
	return nil
}
