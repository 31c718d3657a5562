package agent

import (
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/peers"
)

// A peer's no-reply handshakes (the tunnel's new-handshake timer) show in GET /v1/peers and
// as weft_peer_no_reply_handshakes_total.
func TestAgent_PeersNoReplyHandshakes(t *testing.T) {
	id := cryptotest.NewIdentity(t)
	other, _ := crypto.GeneratePrivateKey()
	a := &Agent{cfg: config.DefaultConfig(), id: id, table: peers.NewTable(id)}
	p, err := a.table.Upsert(peers.PeerConfig{PublicKey: other.Public()})
	if err != nil {
		t.Fatal(err)
	}
	for ts := range int64(2) {
		p.AddTx(1, 100, true, 1000+ts) // data sent, unanswered...
		if !p.ClaimUnanswered(1000 + ts) {
			t.Fatal("timer not armed") // ...and the tunnel's timers gave up waiting
		}
	}
	if ps := a.Peers(); len(ps) != 1 || ps[0].NoReplyHandshakes != 2 {
		t.Fatalf("peers %+v, want one with 2 no-reply handshakes", ps)
	}
	got, ok := gatherCounters(t, newOpsCollector(a), "weft_peer_no_reply_handshakes_total", "peer")[other.Public().String()]
	if !ok || got != 2 {
		t.Fatalf("weft_peer_no_reply_handshakes_total = %v, want 2", got)
	}
}
