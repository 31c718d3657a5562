package membership

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func trKeyring(t testing.TB, keys ...[32]byte) *Keyring {
	t.Helper()
	var ks [][]byte
	for _, k := range keys {
		ks = append(ks, k[:])
	}
	kr, err := NewKeyring(ks, "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealedPacket(t *testing.T) {
	k1, k2 := clRandomKey(t), clRandomKey(t)
	one, both := trKeyring(t, k1), trKeyring(t, k2, k1)
	msg := []byte("ping from a member")

	sealed, err := sealPacket(one, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(msg)+PacketOverhead || bytes.Contains(sealed, msg) {
		t.Fatalf("sealed packet: %d bytes, plaintext visible %v", len(sealed), bytes.Contains(sealed, msg))
	}
	again, _ := sealPacket(one, msg)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one packet are equal: the nonce is not random")
	}
	// Rotation: a host with both keys opens what a host with the old one sealed.
	if got, reason := openPacket(both, sealed); reason != "" || !bytes.Equal(got, msg) {
		t.Fatalf("open with an installed non-primary key: %q %s", got, reason)
	}
	// The other way round: sealed with k2 (both's primary) is refused by a host with k1 only.
	s2, _ := sealPacket(both, msg)
	if _, reason := openPacket(one, s2); reason != DropPacketKey {
		t.Fatalf("wrong key: reason %q", reason)
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"short":      sealed[:PacketOverhead-1],
		"magic":      append([]byte("X1"), sealed[2:]...),
		"memberlist": append([]byte{1}, sealed[1:]...), // memberlist's own encryption, version 1
	} {
		if _, reason := openPacket(both, b); reason != DropPacketMalformed {
			t.Errorf("%s: reason %q, want %s", name, reason, DropPacketMalformed)
		}
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, reason := openPacket(both, bad); reason == "" {
			t.Fatalf("a packet with byte %d flipped opened", i)
		}
	}
}

// trTCPPair returns the two ends of a loopback TCP connection (a real socket buffer: the
// preamble exchange needs one, as in production).
func trTCPPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	for _, c := range []net.Conn{d, a} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return d, a
}

func TestSealedStream_RoundTrip(t *testing.T) {
	k1, k2 := clRandomKey(t), clRandomKey(t)
	var drops dropCounters
	d, a := trTCPPair(t)
	// The dialer sends with k1; the acceptor sends with k2 and holds k1 too (mid-rotation).
	dc := newSealedConn(d, trKeyring(t, k1, k2), &drops, true)
	ac := newSealedConn(a, trKeyring(t, k2, k1), &drops, false)
	big := make([]byte, 3*maxRecordText+123) // several records
	rand.Read(big)
	var wg sync.WaitGroup
	for _, dir := range []struct{ w, r *sealedConn }{{dc, ac}, {ac, dc}} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := dir.w.Write(big); err != nil {
				t.Error(err)
			}
			if _, err := dir.w.Write([]byte("tail")); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			got := make([]byte, len(big)+4)
			if _, err := io.ReadFull(dir.r, got); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got[:len(big)], big) || string(got[len(big):]) != "tail" {
				t.Error("stream content changed")
			}
		}()
	}
	wg.Wait()
	if n := drops.snapshot(); n[DropStreamKey]+n[DropStreamMalformed]+n[DropStreamHandshake] != 0 {
		t.Fatalf("drops on a good stream: %v", n)
	}
}

func TestSealedStream_WrongKey(t *testing.T) {
	var drops dropCounters
	d, a := trTCPPair(t)
	dc := newSealedConn(d, trKeyring(t, clRandomKey(t)), &drops, true)
	ac := newSealedConn(a, trKeyring(t, clRandomKey(t)), &drops, false)
	go dc.Write([]byte("push-pull state"))
	buf := make([]byte, 64)
	if _, err := ac.Read(buf); err == nil || !strings.Contains(err.Error(), "no installed gossip key") {
		t.Fatalf("read with the wrong key: %v", err)
	}
	if _, err := ac.Read(buf); err == nil {
		t.Fatal("a broken stream read again")
	}
	if n := drops.snapshot()[DropStreamKey]; n != 1 {
		t.Fatalf("%s = %d, want 1", DropStreamKey, n)
	}
}

func TestSealedStream_NotWeft(t *testing.T) {
	var drops dropCounters
	d, a := trTCPPair(t)
	ac := newSealedConn(a, trKeyring(t, clRandomKey(t)), &drops, false)
	go d.Write(bytes.Repeat([]byte{0x04}, 64)) // a plain memberlist push-pull, say
	if _, err := ac.Read(make([]byte, 8)); err == nil || !strings.Contains(err.Error(), "older weft") {
		t.Fatalf("a stream without weft's preamble: %v", err)
	}
	if n := drops.snapshot()[DropStreamHandshake]; n != 1 {
		t.Fatalf("%s = %d, want 1", DropStreamHandshake, n)
	}
}

// trRecords splits a stream's bytes after the preamble into records.
func trRecords(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n := int(binary.BigEndian.Uint32(b)) + 4
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// trMITM runs a dialer and an acceptor through a man in the middle that relays both
// preambles, collects the dialer's records of msgs (one Write each) and hands the acceptor
// what mutate makes of them. It returns what the acceptor reads before its first error, the
// error and the drops.
func trMITM(t *testing.T, msgs []string, mutate func([][]byte) [][]byte) (string, error, map[string]uint64) {
	t.Helper()
	kr := trKeyring(t, clRandomKey(t))
	var drops dropCounters
	d, p1 := trTCPPair(t)
	p2, a := trTCPPair(t)
	dc := newSealedConn(d, kr, &drops, true)
	ac := newSealedConn(a, kr, &drops, false)
	pre := len(streamMagic) + streamIDSize
	go ac.handshake() // sends its preamble now, as memberlist's first Read would
	go func() {       // the acceptor's preamble to the dialer
		b := make([]byte, pre)
		if _, err := io.ReadFull(p2, b); err == nil {
			p1.Write(b)
		}
	}()
	go func() {
		for _, m := range msgs {
			if _, err := dc.Write([]byte(m)); err != nil {
				t.Error(err)
			}
		}
		d.(*net.TCPConn).CloseWrite()
	}()
	all, err := io.ReadAll(p1)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(all[:pre])
	for _, r := range mutate(trRecords(t, all[pre:])) {
		out = append(out, r...)
	}
	go func() {
		p2.Write(out)
		p2.(*net.TCPConn).CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := ac.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got), err, drops.snapshot()
		}
	}
}

func TestSealedStream_Hostile(t *testing.T) {
	msgs := []string{"one", "two", "three"}
	if got, err, _ := trMITM(t, msgs, func(r [][]byte) [][]byte { return r }); got != "onetwothree" || err != io.EOF {
		t.Fatalf("untouched stream: %q %v", got, err)
	}
	for _, tc := range []struct {
		name   string
		mutate func([][]byte) [][]byte
		want   string // what the acceptor may read before the refusal
		reason string
	}{
		{"tampered", func(r [][]byte) [][]byte { r[1][len(r[1])-1] ^= 1; return r }, "one", DropStreamKey},
		{"reordered", func(r [][]byte) [][]byte { r[1], r[2] = r[2], r[1]; return r }, "one", DropStreamKey},
		{"dropped", func(r [][]byte) [][]byte { return append(r[:1], r[2:]...) }, "one", DropStreamKey},
		{"replayed", func(r [][]byte) [][]byte { return append(r, r[0]) }, "onetwothree", DropStreamKey},
		{"length", func(r [][]byte) [][]byte { binary.BigEndian.PutUint32(r[1], 1<<30); return r }, "one", DropStreamMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err, drops := trMITM(t, msgs, tc.mutate)
			if got != tc.want || err == nil || err == io.EOF {
				t.Fatalf("read %q then %v; want %q then a refusal", got, err, tc.want)
			}
			if drops[tc.reason] != 1 {
				t.Fatalf("drops %v, want one %s", drops, tc.reason)
			}
		})
	}
}

// TestSealedStream_Spliced: a record recorded on one stream and played into another (same
// key, same position) does not open: the stream ids are in every record's AAD.
func TestSealedStream_Spliced(t *testing.T) {
	kr := trKeyring(t, clRandomKey(t))
	var drops dropCounters
	record := func() []byte { // the first record of a fresh stream, as sent on the wire
		d, p := trTCPPair(t)
		dc := newSealedConn(d, kr, &drops, true)
		go func() {
			p.Write(append(bytes.Clone(streamMagic), make([]byte, streamIDSize)...))
			dc.Write([]byte("join me"))
		}()
		b := make([]byte, len(streamMagic)+streamIDSize+recordOverhead+len("join me"))
		if _, err := io.ReadFull(p, b); err != nil {
			t.Fatal(err)
		}
		return b[len(streamMagic)+streamIDSize:]
	}
	rec := record()
	d, a := trTCPPair(t)
	ac := newSealedConn(a, kr, &drops, false)
	go func() {
		var id [streamIDSize]byte
		d.Write(append(append(bytes.Clone(streamMagic), id[:]...), rec...))
	}()
	if _, err := ac.Read(make([]byte, 64)); err == nil {
		t.Fatal("a record spliced from another stream opened")
	}
	if drops.snapshot()[DropStreamKey] != 1 {
		t.Fatalf("drops %v", drops.snapshot())
	}
}

func TestKeyring_Ops(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := clRandomKey(t), clRandomKey(t)
	kr, err := NewKeyring([][]byte{k1[:]}, dir+"/gossip.keyring")
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := base64.StdEncoding.EncodeToString(k1[:]), base64.StdEncoding.EncodeToString(k2[:])
	for _, step := range []struct {
		name string
		op   func(string) error
		key  string
		err  error
		want []string
	}{
		{"remove the primary", kr.Remove, e1, ErrRemovePrimary, []string{e1}},
		{"use a key not installed", kr.Use, e2, ErrKeyNotInstalled, []string{e1}},
		{"remove a key not installed", kr.Remove, e2, ErrKeyNotInstalled, []string{e1}},
		{"install", kr.Install, e2, nil, []string{e1, e2}},
		{"install again", kr.Install, e2, nil, []string{e1, e2}},
		{"use", kr.Use, e2, nil, []string{e2, e1}},
		{"remove the old", kr.Remove, e1, nil, []string{e2}},
	} {
		err := step.op(step.key)
		if !errors.Is(err, step.err) {
			t.Fatalf("%s: %v, want %v", step.name, err, step.err)
		}
		if got := kr.Keys(); strings.Join(got, ",") != strings.Join(step.want, ",") {
			t.Fatalf("after %s: keys %v, want %v", step.name, got, step.want)
		}
	}
	if err := kr.Install("AAAA"); err == nil {
		t.Fatal("a short key installed")
	}
	keys, ok, err := loadKeyringFile(dir + "/gossip.keyring")
	if !ok || err != nil || len(keys) != 1 || !bytes.Equal(keys[0], k2[:]) {
		t.Fatalf("file: %v %v %v", keys, ok, err)
	}
}

// FuzzOpenPacket: any input is opened or refused with a reason, never a panic.
func FuzzOpenPacket(f *testing.F) {
	kr := trKeyring(f, [32]byte{1})
	s, _ := sealPacket(kr, []byte("seed"))
	f.Add(s)
	f.Add([]byte("W1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, reason := openPacket(kr, b)
		if (reason == "") != (pt != nil) {
			t.Fatalf("reason %q with %d bytes", reason, len(pt))
		}
	})
}

// FuzzSealedStream: any bytes after a weft preamble are read or refused, never a panic or
// a hang, and never more than was sent.
func FuzzSealedStream(f *testing.F) {
	f.Add([]byte{0, 0, 0, 40})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	kr := trKeyring(f, [32]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var drops dropCounters
		d, a := trTCPPair(t)
		ac := newSealedConn(a, kr, &drops, false)
		go func() {
			d.Write(append(append(bytes.Clone(streamMagic), make([]byte, streamIDSize)...), b...))
			d.(*net.TCPConn).CloseWrite()
		}()
		got, _ := io.ReadAll(ac)
		if len(got) > len(b) {
			t.Fatalf("read %d bytes from %d", len(got), len(b))
		}
	})
}
