package policy

import (
	"testing"
	"time"
)

// quotaConsistent checks that every peer's flow count equals the live entries it opened.
func quotaConsistent(t *testing.T, e *Engine) {
	t.Helper()
	live := map[uint32]int32{}
	for i := range e.flows.shards {
		sh := &e.flows.shards[i]
		sh.mu.Lock()
		for _, en := range sh.slots {
			if en.used && en.peer != 0 {
				live[en.peer]++
			}
		}
		sh.mu.Unlock()
	}
	for id := range e.flows.peerFlows {
		if got := e.flows.peerFlows[id].Load(); got != live[uint32(id)] {
			t.Fatalf("peer id %d: counted %d flows, the table holds %d", id, got, live[uint32(id)])
		}
	}
}

// TestEngine_FlowQuota: a peer that floods new flows gets MaxFlowsPerPeer of them and no
// more (each refusal counted as policy_flow_quota); its admitted flows keep passing, another
// peer still opens flows, this host's own outbound flows are not its quota, and once its
// flows expire it may open new ones. The counts match the table throughout.
func TestEngine_FlowQuota(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.MaxFlows, cfg.MaxFlowsPerPeer = 1024, 8
	s := mustCompile(t, "default: deny\nrules:\n  - {from: {groups: [web]}, to: {any: true}}\n  - {from: {groups: [db]}, to: {any: true}}\n", cluster())
	e := newEngine(t, cfg, s)
	now := int64(time.Second)

	// The hostile peer web1 opens 100 UDP flows to db1:53 from 100 source ports.
	admitted, refused := 0, 0
	for i := range 100 {
		v := e.Inbound(udpPkt(web1, db1, uint16(2000+i), 53), &idWeb1, now)
		switch {
		case v.Decision == AllowedByRule:
			admitted++
		case v.Decision == Denied && v.Reason == ReasonFlowQuota:
			refused++
		default:
			t.Fatalf("flow %d: %+v", i, v)
		}
	}
	if admitted != 8 || refused != 92 {
		t.Fatalf("web1 got %d flows, %d refused; want 8 and 92", admitted, refused)
	}
	if n := e.Stats().Drops[ReasonFlowQuota]; n != 92 {
		t.Fatalf("policy_flow_quota counted %d, want 92", n)
	}
	quotaConsistent(t, e)

	// Its admitted flows pass both ways; a refused one stays refused.
	for i := range 8 {
		if v := e.Inbound(udpPkt(web1, db1, uint16(2000+i), 53), &idWeb1, now); v.Decision != AllowedByFlow {
			t.Fatalf("admitted flow %d: %+v", i, v)
		}
		if v := e.Outbound(udpPkt(db1, web1, 53, uint16(2000+i)), now); v.Decision != AllowedByFlow {
			t.Fatalf("reply of admitted flow %d: %+v", i, v)
		}
	}
	if v := e.Inbound(udpPkt(web1, db1, 2050, 53), &idWeb1, now); v.Reason != ReasonFlowQuota {
		t.Fatalf("refused flow: %+v", v)
	}

	// Another peer is not affected; this host's outbound flows to web1 are not web1's quota.
	if v := e.Inbound(udpPkt(web2, db1, 3000, 53), &idWeb2, now); v.Decision != AllowedByRule {
		t.Fatalf("web2's new flow: %+v", v)
	}
	for i := range 20 {
		if v := e.Outbound(udpPkt(db1, web1, uint16(4000+i), 9000), now); v.Decision != AllowedByRule {
			t.Fatalf("outbound flow %d to web1: %+v", i, v)
		}
	}
	quotaConsistent(t, e)

	// After its flows expired and were swept, web1 may open new ones, again up to 8.
	later := now + int64(cfg.UDPTimeout) + 1
	e.Sweep(later)
	quotaConsistent(t, e)
	admitted = 0
	for i := range 20 {
		if v := e.Inbound(udpPkt(web1, db1, uint16(5000+i), 53), &idWeb1, later); v.Decision == AllowedByRule {
			admitted++
		}
	}
	if admitted != 8 {
		t.Fatalf("after expiry web1 got %d new flows, want 8", admitted)
	}
	quotaConsistent(t, e)
}

// TestEngine_FlowQuotaOff: with MaxFlowsPerPeer 0 one peer may fill the table (the old
// behaviour, eviction only), and nothing is counted against it.
func TestEngine_FlowQuotaOff(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.MaxFlows, cfg.MaxFlowsPerPeer = 64, 0
	s := mustCompile(t, "default: deny\nrules: [{from: {groups: [web]}, to: {any: true}}]\n", cluster())
	e := newEngine(t, cfg, s)
	for i := range 200 {
		if v := e.Inbound(udpPkt(web1, db1, uint16(2000+i), 53), &idWeb1, 1); v.Decision != AllowedByRule {
			t.Fatalf("flow %d: %+v", i, v)
		}
	}
	if n := e.Stats().Drops[ReasonFlowQuota]; n != 0 {
		t.Fatalf("policy_flow_quota counted %d without a quota", n)
	}
	quotaConsistent(t, e)
}

func TestConfig_FlowQuotaBounds(t *testing.T) {
	for _, n := range []int{-1, 1025} {
		c := DefaultLocalConfig()
		c.MaxFlowsPerPeer = n
		if _, err := New(c); err == nil {
			t.Fatalf("MaxFlowsPerPeer %d accepted with MaxFlows %d", n, c.MaxFlows)
		}
	}
}
