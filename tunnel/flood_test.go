package tunnel

import (
	"net/netip"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// fanoutRouter floods every packet to the same peer n times, as an L2 flood to n peers
// would, to exercise the outbound loop's copies beyond its scratch capacity.
type fanoutRouter struct {
	to *peers.Peer
	n  int
}

func (r *fanoutRouter) Route(_ []byte, dst []*peers.Peer) ([]*peers.Peer, peers.DropReason) {
	for range r.n {
		dst = append(dst, r.to)
	}
	return dst, peers.DropNone
}

func (r *fanoutRouter) Accept(*peers.Peer, []byte) peers.DropReason { return peers.DropNone }

// TestTunnel_FloodBeyondScratch: a flood to more destinations than the outbound scratch holds
// (it starts with room for 8) must neither panic nor lose copies.
func TestTunnel_FloodBeyondScratch(t *testing.T) {
	const fanout = 12
	router := &fanoutRouter{n: fanout}
	cfgA := DefaultConfig()
	cfgA.Router = router
	bindA, bindB := testkit.NewCaptureBind(128, bufSize), testkit.NewCaptureBind(128, bufSize)
	pr := newPair(t, cfgA, DefaultConfig(), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 16}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 16}), bindA, bindB)
	pr.link(t, netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820"))
	pr.handshakeDirect(t)
	router.to = pr.peerB

	sc := pr.a.newSendScratch()
	bufs, sizes := [][]byte{make([]byte, bufSize)}, []int{0}
	for round := range 3 {
		sizes[0] = copy(bufs[0][headroom:], ipv4Packet("10.0.1.1", "10.0.2.2", 100))
		bindA.N = 0
		pr.a.sendBatch(sc, bufs, sizes)
		if bindA.N != fanout {
			t.Fatalf("round %d: %d datagrams sent for a flood to %d", round, bindA.N, fanout)
		}
	}
}
