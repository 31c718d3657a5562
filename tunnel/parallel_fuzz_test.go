package tunnel

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/vxlan"
)

// FuzzTunnel_ReceiveHostile: a peer holding a valid session (so every message
// authenticates) sends a batch of up to 16 plaintexts of its choosing — any VXLAN header,
// any inner bytes, lengths that lie — some of them then truncated or flipped on the wire.
// The same batch goes through a receiver that opens each message on its own (run to
// completion) and one that shares the batch among helpers (parallel.go). Neither panics;
// both deliver exactly the same packets and count exactly the same drops; and every packet
// delivered is a whole IP packet from the sender's own prefixes.
func FuzzTunnel_ReceiveHostile(f *testing.F) {
	clk := newTestClock() // the keypairs never expire however long the fuzzing runs
	pairs, marks := [2]*direct{}, [2]*partialFake{}
	for i, workers := range []int{1, 2} {
		cfg := DefaultConfig()
		cfg.CryptoWorkers = workers
		// B's device takes partial checksums, so a flag that survives B's checks is
		// delivered marked.
		pairs[i], _, marks[i] = newPartialDirectWith(f, cfg, clk, false, true)
		if workers > 1 {
			pairs[i].b.startCryptoHelpers()
		}
		t := pairs[i]
		f.Cleanup(func() { t.a.Close(); t.b.Close() })
	}
	msg := func(inner []byte) []byte {
		hdr := make([]byte, vxlan.HeaderSize)
		proto := vxlan.ProtoIPv4
		if len(inner) > 0 && inner[0]>>4 == 6 {
			proto = vxlan.ProtoIPv6
		}
		vxlan.Encode(hdr, DefaultConfig().VNI, proto)
		b := binary.BigEndian.AppendUint16(nil, uint16(len(hdr)+len(inner)))
		return append(append(b, hdr...), inner...)
	}
	good := ipv4Packet("10.0.1.1", "10.0.2.2", 100)
	spoofed := ipv4Packet("10.0.9.1", "10.0.2.2", 60)
	long := append(bytes.Clone(good), 0, 0, 0) // padding past the IP length: cut
	f.Add(append(append(msg(good), msg(spoofed)...), msg(long)...), byte(0))
	f.Add(bytes.Repeat(msg(good), 12), byte(0x24)) // per message: as sent, cut short, flipped, as sent, ...
	f.Add(append(msg(ipv6Packet("fd00:1::1", "fd00:2::2", 80)), msg(nil)...), byte(0xff))
	// The inner-checksum flag, on a UDP packet (honoured) and an ICMP-like one (dropped).
	flagged := msg(good)
	flagged[2+1] = vxlan.CsumAccepted | vxlan.CsumPartial
	odd := msg(spoofed)
	odd[2+1], odd[2+8+9] = vxlan.CsumPartial, 1
	f.Add(append(flagged, odd...), byte(0))
	f.Fuzz(func(t *testing.T, in []byte, mangle byte) {
		var plains [][]byte
		for len(in) >= 2 && len(plains) < 16 {
			n := min(int(binary.BigEndian.Uint16(in)), len(in)-2, 9000)
			plains = append(plains, in[2:2+n])
			in = in[2+n:]
		}
		var out [2][][]byte
		var drops [2]map[string]uint64
		for k, d := range pairs {
			before := d.b.Stats().Drops
			kp := d.peerB.Keypairs().Current()
			for i, p := range plains {
				b := d.rs.bufs[i]
				copy(b[crypto.MessageTransportHeaderSize:], p)
				m, err := kp.ReserveAt(b, len(p), clk.now())
				if err != nil {
					t.Fatal(err)
				}
				kp.Finish(b[:m])
				switch mangle >> (i % 4 * 2) & 3 { // per message: as sent, cut short, a bit flipped
				case 1:
					m = min(m, 1+len(p)%(m+1))
				case 2:
					b[m-1-len(p)%m] ^= 0x20
				}
				d.rs.sizes[i] = m
				d.rs.eps[i] = d.fromA
			}
			marks[k].marks = marks[k].marks[:0]
			d.b.receiveBatch(d.rs, len(plains))
			for len(d.devB.Out) > 0 {
				out[k] = append(out[k], <-d.devB.Out)
			}
			if len(marks[k].marks) != len(out[k]) {
				t.Fatalf("%d packets delivered, %d marks", len(out[k]), len(marks[k].marks))
			}
			after := d.b.Stats().Drops
			drops[k] = map[string]uint64{}
			for r, v := range after {
				if v != before[r] {
					drops[k][r] = v - before[r]
				}
			}
		}
		if testing.Verbose() {
			t.Logf("%d messages: delivered %d, dropped %v, shared batches %d", len(plains), len(out[0]), drops[0], pairs[1].b.Stats().ParallelBatches)
		}
		if len(out[0]) != len(out[1]) || !maps.Equal(drops[0], drops[1]) {
			t.Fatalf("run to completion delivered %d, dropped %v; shared delivered %d, dropped %v", len(out[0]), drops[0], len(out[1]), drops[1])
		}
		for i, p := range out[0] {
			if !bytes.Equal(p, out[1][i]) {
				t.Fatalf("packet %d differs between run to completion and shared", i)
			}
			n, _, ok := ipLen(p)
			if !ok || n != len(p) {
				t.Fatalf("delivered %d bytes that are not one whole IP packet", len(p))
			}
			// A packet marked partial is marked where the receiver finds the checksum.
			if m := marks[0].marks[i]; m != (tap.Partial{}) {
				if at, ok := partialAt(p, false); !ok || at != m || marks[1].marks[i] != m {
					t.Fatalf("packet %d marked %+v; the checksum is at %+v (%v)", i, m, at, ok)
				}
			}
			src, _ := netip.AddrFromSlice(p[12:16])
			if p[0]>>4 == 6 {
				src, _ = netip.AddrFromSlice(p[8:24])
			}
			if !netip.MustParsePrefix("10.0.1.0/24").Contains(src) && !netip.MustParsePrefix("fd00:1::/64").Contains(src) {
				t.Fatalf("delivered a packet from %v, outside the sender's prefixes", src)
			}
		}
	})
}
