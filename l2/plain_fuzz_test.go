package l2

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// FuzzPlainVTEP_Deliver fuzzes the plaintext VTEP's receive step with whole UDP payloads
// from one remote VTEP: each is written to the TAP exactly once or counted under exactly
// one drop reason; what is written carries the VTEP's VNI (with the I flag) and is exactly
// the frame behind the header; and a MAC that gossip pins to another VTEP stays pinned
// whatever the payload claims. The FDB runs on a fixed clock, so nothing ages mid-run.
func FuzzPlainVTEP_Deliver(f *testing.F) {
	const vni = 42
	dev := testkit.NewDevice(plainDev)
	cfg := DefaultPlainConfig()
	cfg.VNI = vni
	cfg.ListenAddr = netip.MustParseAddrPort("127.0.0.1:0")
	fixed := time.Unix(1_800_000_000, 0)
	cfg.FDB.Now = func() time.Time { return fixed }
	v, err := NewPlainVTEP(cfg, dev) // not started: the fuzzer calls accept and write itself
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })
	sender := netip.MustParseAddrPort("192.0.2.1:4789")
	other := netip.MustParseAddrPort("192.0.2.9:4789")
	v.AddRemote(sender)
	v.AddRemote(other)
	testMACC := MAC{0x02, 0, 0, 0, 0, 0x0c}
	v.fdb.SetStatic(testMACC, other) // gossip: MAC C is behind the other VTEP

	hdr := func(vni uint32) []byte {
		var h [vxlan.HeaderSize]byte
		vxlan.Encode(h[:], vni, vxlan.ProtoNone)
		return h[:]
	}
	f.Add(append(hdr(vni), testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, 46))...))
	f.Add(append(hdr(vni), testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))...))
	f.Add(append(hdr(vni), testkit.Ethernet(testMACB, testMACC, nil, EtherTypeIPv4, make([]byte, 46))...)) // claims C
	f.Add(append(hdr(vni+1), testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, 46))...))
	f.Add(append(make([]byte, vxlan.HeaderSize), testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, nil)...)) // no I flag
	f.Add(append(hdr(vni), 1, 2, 3))
	f.Add(hdr(vni)[:5])
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > plainBufSize {
			return
		}
		var before [peers.NumDropReasons]uint64
		for r := range before {
			before[r] = v.drops.Get(peers.DropReason(r))
		}
		rx, werr := v.rxPackets.Load(), v.devWriteErrs.Load()
		var learned plainLearned
		// As udpLoop does: the packet behind the read headroom, accepted, then written.
		b := append(make([]byte, plainRxHeadroom), pkt...)
		if v.accept(b[plainRxHeadroom:], sender, &learned) {
			v.write([][]byte{b})
		}
		fates := 0
		delivered := v.rxPackets.Load() - rx
		if delivered > 1 {
			t.Fatalf("one payload written %d times", delivered)
		}
		fates += int(delivered)
		for r := range before {
			switch n := v.drops.Get(peers.DropReason(r)) - before[r]; n {
			case 0:
			case 1:
				fates++
			default:
				t.Fatalf("one payload counted %d times as %v", n, peers.DropReason(r))
			}
		}
		if n := v.devWriteErrs.Load() - werr; n != 0 {
			t.Fatalf("%d device write errors from the fake TAP", n)
		}
		if fates != 1 {
			t.Fatalf("one payload had %d fates", fates)
		}
		if p, ok := v.fdb.Lookup(testMACC); !ok || p != other {
			t.Fatalf("MAC C moved to %v, gossip pins it to %v", p, other)
		}
		if delivered == 0 {
			return
		}
		got := <-dev.Out
		if pkt[0]&0x08 == 0 {
			t.Fatal("delivered a payload without the VXLAN I flag")
		}
		if got := binary.BigEndian.Uint32(pkt[4:8]) >> 8; got != vni {
			t.Fatalf("delivered a frame of VNI %d, ours is %d", got, vni)
		}
		if !bytes.Equal(got, pkt[vxlan.HeaderSize:]) || len(got) < EthernetHeaderLen {
			t.Fatalf("delivered %d bytes, not the %d-byte frame behind the header", len(got), len(pkt)-vxlan.HeaderSize)
		}
	})
}
