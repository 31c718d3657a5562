package crypto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/weftnet/weft/internal/testkit"
)

// The interop tests run the reference implementation, a wireguard-go
// device, in process: its TUN is a tuntest channel TUN and its UDP side one
// end of a bindtest channel bind pair; weft's crypto drives the other end
// by hand. Nothing touches the network.
//
// tuntest's naming is from the device's side of the TUN: the device writes
// decrypted packets into Inbound and reads packets to send from Outbound.

var (
	wgAddr   = netip.MustParseAddr("10.99.0.1") // the device's overlay address
	weftAddr = netip.MustParseAddr("10.99.0.2") // in the allowed IPs of weft's key
)

// The endpoints of bindtest's pair: the device's bind sends to port 1 (our
// side) and we send to port 2 (the device). Replies may come on either of
// our receive functions.
const (
	deviceEndpoint = bindtest.ChannelEndpoint(2)
	ourEndpoint    = "127.0.0.1:1"
)

type wgPeer struct {
	dev    *device.Device
	tun    *tuntest.ChannelTUN
	pub    PublicKey
	bind   conn.Bind // our end
	rx     chan []byte
	closed chan struct{}
	wg     sync.WaitGroup

	logMu  sync.Mutex
	logOff bool
}

func newWGPeer(t *testing.T, weftPub PublicKey, psk PresharedKey) *wgPeer {
	t.Helper()
	priv := mustKey(t)
	binds := bindtest.NewChannelBinds()
	p := &wgPeer{
		tun:    tuntest.NewChannelTUN(),
		pub:    priv.Public(),
		bind:   binds[1],
		rx:     make(chan []byte, 64),
		closed: make(chan struct{}),
	}
	logger := device.NewLogger(device.LogLevelSilent, "")
	if testing.Verbose() {
		// device.Close does not wait for its crypto workers: stop logging
		// through t once the test is over.
		logf := func(f string, a ...any) {
			p.logMu.Lock()
			defer p.logMu.Unlock()
			if !p.logOff {
				t.Logf("wireguard-go: "+f, a...)
			}
		}
		logger = &device.Logger{Verbosef: logf, Errorf: logf}
	}
	p.dev = device.NewDevice(p.tun.TUN(), binds[0], logger)
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\npreshared_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(weftPub[:]), hex.EncodeToString(psk[:]),
		ourEndpoint, weftAddr)
	if err := p.dev.IpcSet(cfg); err != nil {
		p.dev.Close()
		t.Fatalf("IpcSet: %v", err)
	}
	if err := p.dev.Up(); err != nil {
		p.dev.Close()
		t.Fatalf("Up: %v", err)
	}
	fns, _, err := p.bind.Open(0)
	if err != nil {
		p.dev.Close()
		t.Fatalf("bind.Open: %v", err)
	}
	for _, fn := range fns {
		p.wg.Add(1)
		go p.receive(fn)
	}
	t.Cleanup(p.close)
	return p
}

func (p *wgPeer) receive(fn conn.ReceiveFunc) {
	defer p.wg.Done()
	bufs := [][]byte{make([]byte, 65536)}
	sizes := make([]int, 1)
	eps := make([]conn.Endpoint, 1)
	for {
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		select {
		case p.rx <- bytes.Clone(bufs[0][:sizes[0]]):
		case <-p.closed:
			return
		}
	}
}

func (p *wgPeer) close() {
	p.dev.Close()
	p.bind.Close()
	close(p.closed)
	p.wg.Wait()
	p.logMu.Lock()
	p.logOff = true
	p.logMu.Unlock()
}

func (p *wgPeer) send(t *testing.T, msg []byte) {
	t.Helper()
	if err := p.bind.Send([][]byte{msg}, deviceEndpoint); err != nil {
		t.Fatalf("send to device: %v", err)
	}
}

// recv returns the next UDP payload from the device of type typ, skipping
// others (keepalives are type 4 too: the caller decides).
func (p *wgPeer) recv(t *testing.T, typ uint32) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-p.rx:
			if messageType(msg) == typ {
				return msg
			}
			t.Logf("skipping message of type %d (%d bytes)", messageType(msg), len(msg))
		case <-deadline:
			t.Fatalf("no message of type %d from the device within 10s", typ)
		}
	}
}

func TestInterop_WeftInitiates(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {9, 8, 7}} {
		t.Run(fmt.Sprintf("psk=%v", psk != PresharedKey{}), func(t *testing.T) {
			id := NewIdentity(mustKey(t))
			defer id.Close()
			wg := newWGPeer(t, id.PublicKey(), psk)
			h := NewHandshake(id, wg.pub, psk)

			init := make([]byte, MessageInitiationSize)
			if _, err := h.CreateInitiation(init, 0xabcdef01); err != nil {
				t.Fatal(err)
			}
			wg.send(t, init)
			resp := wg.recv(t, MessageResponseType)
			if v := id.Admit(resp, netip.MustParseAddrPort("127.0.0.1:2"), false); v != VerdictAccept {
				t.Fatalf("Admit(response) = %v", v)
			}
			kp, err := h.ConsumeResponse(resp)
			if err != nil {
				t.Fatalf("ConsumeResponse of wireguard-go's response: %v", err)
			}
			if !kp.IsInitiator() || kp.LocalIndex() != 0xabcdef01 {
				t.Fatalf("keypair: initiator %v local %x", kp.IsInitiator(), kp.LocalIndex())
			}

			for i, size := range []int{0, 37, 1000} {
				pkt := testkit.ICMPEcho(weftAddr, wgAddr, uint16(i), 1, false, testkit.Pattern(size, 8))
				if testkit.Checksum(pkt[:20]) != 0 {
					t.Fatal("bad IPv4 header checksum in test packet")
				}
				buf := make([]byte, MessageTransportHeaderSize+len(pkt), MessageTransportOverhead+len(pkt))
				copy(buf[MessageTransportHeaderSize:], pkt)
				n, err := kp.Seal(buf, len(pkt))
				if err != nil {
					t.Fatal(err)
				}
				wg.send(t, buf[:n])
				select {
				case got := <-wg.tun.Inbound:
					if !bytes.Equal(got, pkt) {
						t.Fatalf("packet %d out of wireguard-go's TUN differs:\n got %x\nwant %x", i, got, pkt)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("packet %d did not come out of wireguard-go's TUN", i)
				}
			}
		})
	}
}

func TestInterop_WireGuardInitiates(t *testing.T) {
	for _, psk := range []PresharedKey{{}, {1, 2, 3}} {
		t.Run(fmt.Sprintf("psk=%v", psk != PresharedKey{}), func(t *testing.T) {
			id := NewIdentity(mustKey(t))
			defer id.Close()
			wg := newWGPeer(t, id.PublicKey(), psk)
			h := NewHandshake(id, wg.pub, psk)

			pkt := testkit.ICMPEcho(wgAddr, weftAddr, 42, 1, false, testkit.Pattern(61, 8)) // 89 bytes: padded to 96 by the device
			select {
			case wg.tun.Outbound <- pkt:
			case <-time.After(10 * time.Second):
				t.Fatal("wireguard-go did not read its TUN")
			}

			init := wg.recv(t, MessageInitiationType)
			src := netip.MustParseAddrPort("127.0.0.1:2")
			if v := id.Admit(init, src, false); v != VerdictAccept {
				t.Fatalf("Admit(initiation) = %v", v)
			}
			got, err := id.ConsumeInitiation(init, func(k PublicKey) *Handshake {
				if k == wg.pub {
					return h
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ConsumeInitiation of wireguard-go's initiation: %v", err)
			}
			if got != h {
				t.Fatal("ConsumeInitiation returned another handshake")
			}
			resp := make([]byte, MessageResponseSize)
			n, kp, err := h.CreateResponse(resp, 0x5eed)
			if err != nil {
				t.Fatal(err)
			}
			var keys Keypairs
			keys.Install(kp)
			wg.send(t, resp[:n])

			msg := wg.recv(t, MessageTransportType)
			rcv, counter, err := ParseTransportHeader(msg)
			if err != nil || rcv != 0x5eed {
				t.Fatalf("transport header: receiver %x counter %d err %v", rcv, counter, err)
			}
			plain, err := kp.Open(msg)
			if err != nil {
				t.Fatalf("Open of wireguard-go's transport message: %v", err)
			}
			if !keys.Confirm(kp) || keys.Current() != kp {
				t.Fatal("Confirm did not promote the responder keypair")
			}
			if len(plain)%16 != 0 || len(plain) < len(pkt) {
				t.Fatalf("plaintext of %d bytes, want %d padded to 16", len(plain), len(pkt))
			}
			total := int(binary.BigEndian.Uint16(plain[2:]))
			if !bytes.Equal(plain[:total], pkt) {
				t.Fatalf("opened packet differs:\n got %x\nwant %x", plain[:total], pkt)
			}
			if !isZero(plain[total:]) {
				t.Fatalf("padding not zero: %x", plain[total:])
			}

			// And back on the same session, weft as responder now sending.
			reply := testkit.ICMPEcho(weftAddr, wgAddr, 43, 1, false, testkit.Pattern(10, 8))
			buf := make([]byte, MessageTransportHeaderSize+len(reply), MessageTransportOverhead+len(reply))
			copy(buf[MessageTransportHeaderSize:], reply)
			n, err = kp.Seal(buf, len(reply))
			if err != nil {
				t.Fatal(err)
			}
			wg.send(t, buf[:n])
			select {
			case out := <-wg.tun.Inbound:
				if !bytes.Equal(out, reply) {
					t.Fatalf("reply out of wireguard-go's TUN differs:\n got %x\nwant %x", out, reply)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("reply did not come out of wireguard-go's TUN")
			}
		})
	}
}

// TestInterop_CookieFromWireGuard puts the device under load by flooding it
// with copies of one initiation, so that it answers with cookie replies; weft
// consumes one, and its next initiation, now with mac2, is accepted by the
// loaded device.
func TestInterop_CookieFromWireGuard(t *testing.T) {
	id := NewIdentity(mustKey(t))
	defer id.Close()
	wg := newWGPeer(t, id.PublicKey(), PresharedKey{})
	h := NewHandshake(id, wg.pub, PresharedKey{})

	init := make([]byte, MessageInitiationSize)
	if _, err := h.CreateInitiation(init, 77); err != nil {
		t.Fatal(err)
	}
	// The device is under load once 128 handshake messages queue up.
	bufs := make([][]byte, 1000)
	for i := range bufs {
		bufs[i] = init
	}
	if err := wg.bind.Send(bufs, deviceEndpoint); err != nil {
		t.Fatal(err)
	}
	reply := wg.recv(t, MessageCookieReplyType)
	if err := h.ConsumeCookieReply(reply); err != nil {
		t.Fatalf("ConsumeCookieReply of wireguard-go's cookie reply: %v", err)
	}

	// A fresh initiation now carries mac2. Retry until the device answers
	// with a response (its flood limit is 20 ms, our timestamps are
	// whitened to 16 ms) while it is still under load (1 s after the queue
	// drains), draining the cookie replies to the flood meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for i := uint32(100); ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no response to an initiation with mac2")
		}
		time.Sleep(30 * time.Millisecond)
		if _, err := h.CreateInitiation(init, i); err != nil {
			t.Fatal(err)
		}
		if isZero(init[initMAC2:]) {
			t.Fatal("initiation after a cookie reply has no mac2")
		}
		wg.send(t, init)
		if resp := wg.recvFor(MessageResponseType, 200*time.Millisecond); resp != nil {
			if _, err := h.ConsumeResponse(resp); err == nil {
				return
			} else if !errors.Is(err, ErrNoPendingHandshake) {
				t.Fatalf("ConsumeResponse: %v", err)
			}
		}
	}
}

// TestInterop_CookieToWireGuard: weft answers wireguard-go's initiation with
// a cookie reply; the device's retry (after RekeyTimeout) carries a mac2
// that weft's Admit under load accepts.
func TestInterop_CookieToWireGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("waits RekeyTimeout (5 s) for wireguard-go's retry")
	}
	id := NewIdentity(mustKey(t))
	defer id.Close()
	wg := newWGPeer(t, id.PublicKey(), PresharedKey{})
	src := netip.MustParseAddrPort("127.0.0.1:3")

	select {
	case wg.tun.Outbound <- testkit.ICMPEcho(wgAddr, weftAddr, 1, 1, false, testkit.Pattern(8, 8)):
	case <-time.After(10 * time.Second):
		t.Fatal("wireguard-go did not read its TUN")
	}
	init := wg.recv(t, MessageInitiationType)
	if v := id.Admit(init, src, true); v != VerdictCookie {
		t.Fatalf("Admit(first initiation) under load = %v, want cookie", v)
	}
	reply := make([]byte, MessageCookieReplySize)
	n, err := id.CreateCookieReply(reply, init, src)
	if err != nil {
		t.Fatal(err)
	}
	wg.send(t, reply[:n])

	retry := wg.recv(t, MessageInitiationType)
	if isZero(retry[initMAC2:]) {
		t.Fatal("wireguard-go's retry has no mac2")
	}
	if v := id.Admit(retry, src, true); v != VerdictAccept {
		t.Fatalf("Admit(retry with mac2) under load = %v, want accept", v)
	}
}

// recvFor is recv with a short timeout and no failure: nil when nothing of
// type typ came.
func (p *wgPeer) recvFor(typ uint32, d time.Duration) []byte {
	timeout := time.After(d)
	for {
		select {
		case msg := <-p.rx:
			if messageType(msg) == typ {
				return msg
			}
		case <-timeout:
			return nil
		}
	}
}
