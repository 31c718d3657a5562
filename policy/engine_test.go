package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/testkit"
)

// step is one packet through an Engine and the verdict expected for it.
type step struct {
	name     string
	pkt      []byte
	inbound  bool
	peer     *Endpoint
	at       int64 // clock, nanoseconds
	decision Decision
	rule     int32
	reason   Reason
}

func run(t *testing.T, e *Engine, steps []step) {
	t.Helper()
	for _, st := range steps {
		var v Verdict
		if st.inbound {
			v = e.Inbound(st.pkt, st.peer, st.at)
		} else {
			v = e.Outbound(st.pkt, st.at)
		}
		want := Verdict{Decision: st.decision, Rule: st.rule, Reason: st.reason}
		if v != want {
			t.Fatalf("%s: verdict %+v, want %+v", st.name, v, want)
		}
	}
}

func TestEngine_ReturnTraffic(t *testing.T) {
	const doc = `
default: deny
rules:
  - name: web-db
    from: {groups: [web]}
    to:   {services: [db]}
  - name: dns
    from: {groups: [web]}
    to:   {groups: [db], ports: ["53/udp"]}
  - name: ping
    from: {groups: [web]}
    to:   {any: true, proto: icmp}
`
	s := mustCompile(t, doc, cluster())
	tests := []struct {
		name  string
		steps []step
	}{
		{"tcp opened by a peer (on db1)", []step{
			{"syn in", tcpPkt(web1, db1, 40000, 5432, syn), true, &idWeb1, 0, AllowedByRule, 0, 0},
			{"syn-ack out", tcpPkt(db1, web1, 5432, 40000, synack), false, nil, 1, AllowedByFlow, 0, 0},
			{"ack in", tcpPkt(web1, db1, 40000, 5432, ack), true, &idWeb1, 2, AllowedByFlow, 0, 0},
			{"new flow out, reverse direction", tcpPkt(db1, web1, 5432, 22, syn), false, nil, 3, Denied, -1, ReasonPolicyDenied},
			{"new flow out from another port", tcpPkt(db1, web1, 40001, 40000, syn), false, nil, 3, Denied, -1, ReasonPolicyDenied},
		}},
		{"tcp opened here (on web1)", []step{
			{"syn out", tcpPkt(web1, db1, 40000, 5432, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"syn-ack in", tcpPkt(db1, web1, 5432, 40000, synack), true, &idDB1, 1, AllowedByFlow, 0, 0},
			{"new flow in, reverse direction", tcpPkt(db1, web1, 5432, 22, syn), true, &idDB1, 2, Denied, -1, ReasonPolicyDenied},
		}},
		{"udp request/response (on db1)", []step{
			{"query in", udpPkt(web1, db1, 33000, 53), true, &idWeb1, 0, AllowedByRule, 1, 0},
			{"answer out", udpPkt(db1, web1, 53, 33000), false, nil, 1, AllowedByFlow, 1, 0},
			{"db1 queries web1", udpPkt(db1, web1, 33000, 53), false, nil, 2, Denied, -1, ReasonPolicyDenied},
		}},
		{"icmp echo (on web1)", []step{
			{"request out", icmpEcho(web1, db1, 7, false), false, nil, 0, AllowedByRule, 2, 0},
			{"reply in", icmpEcho(db1, web1, 7, true), true, &idDB1, 1, AllowedByFlow, 2, 0},
			{"db1 pings web1 (other id)", icmpEcho(db1, web1, 8, false), true, &idDB1, 2, Denied, -1, ReasonPolicyDenied},
		}},
		{"icmpv6 echo (on web6)", []step{
			{"request out", icmpEcho(web6, db6, 9, false), false, nil, 0, AllowedByRule, 2, 0},
			{"reply in", icmpEcho(db6, web6, 9, true), true, &idDB1, 1, AllowedByFlow, 2, 0},
		}},
		{"tcp over ipv6 (on db6)", []step{
			{"syn in", tcpPkt(web6, db6, 40000, 5432, syn), true, &idWeb1, 0, AllowedByRule, 0, 0},
			{"syn-ack out", tcpPkt(db6, web6, 5432, 40000, synack), false, nil, 1, AllowedByFlow, 0, 0},
			{"port 22", tcpPkt(web6, db6, 40000, 22, syn), true, &idWeb1, 1, Denied, -1, ReasonPolicyDenied},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, newEngine(t, DefaultLocalConfig(), s), tt.steps)
		})
	}
}

// A hostile peer cannot borrow the groups of another host: the source's groups are the
// caller-supplied identity, not what the Resolver says of the packet's source address.
func TestEngine_SpoofedGroupDenied(t *testing.T) {
	s := mustCompile(t, issueExample, cluster())
	e := newEngine(t, DefaultLocalConfig(), s)
	run(t, e, []step{
		// none1 sends from web1's address (as if the allowed-source check were missing):
		// the Resolver would say "web", the identity says nothing.
		{"spoofed source address", tcpPkt(web1, db1, 40000, 5432, syn), true, &idNone1, 0, Denied, -1, ReasonPolicyDenied},
		// An identity with no groups at all, and no identity.
		{"forged empty identity", tcpPkt(web1, db1, 40000, 5432, syn), true, &Endpoint{}, 0, Denied, -1, ReasonPolicyDenied},
		{"nil identity", tcpPkt(web1, db1, 40000, 5432, syn), true, nil, 0, Denied, -1, ReasonPolicyDenied},
		// A peer whose certificate has a different group of a similar name.
		{"near-miss group", tcpPkt(web1, db1, 40000, 5432, syn), true, &Endpoint{Host: "web1", Groups: []string{"web "}}, 0, Denied, -1, ReasonPolicyDenied},
		// The real web1 is allowed: the refusals above are the identity's doing.
		{"real identity", tcpPkt(web1, db1, 40000, 5432, syn), true, &idWeb1, 0, AllowedByRule, 0, 0},
	})
	// The denied attempts did not open the flow for the spoofer: with the flow now open
	// by web1, the table passes it, but the spoofer's earlier packets created nothing.
	if st := e.Stats(); st.Flows != 1 || st.Drops[ReasonPolicyDenied] != 4 {
		t.Fatalf("stats %+v, want 1 flow and 4 policy drops", st)
	}
}

func TestEngine_Timeouts(t *testing.T) {
	cfg := DefaultLocalConfig()
	s := mustCompile(t, "default: deny\nrules: [{from: {groups: [web]}, to: {any: true}}]\n", cluster())
	ns := func(d time.Duration) int64 { return int64(d) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"tcp syn only expires after the pending timeout", []step{
			{"syn", tcpPkt(web1, db1, 1000, 80, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"reply just before", tcpPkt(db1, web1, 80, 1000, synack), true, &idDB1, ns(cfg.TCPPendingTimeout) - 1, AllowedByFlow, 0, 0},
		}},
		{"tcp syn only, reply too late", []step{
			{"syn", tcpPkt(web1, db1, 1000, 80, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"reply after", tcpPkt(db1, web1, 80, 1000, synack), true, &idDB1, ns(cfg.TCPPendingTimeout), Denied, -1, ReasonPolicyDenied},
		}},
		{"tcp established lives long", []step{
			{"syn", tcpPkt(web1, db1, 1000, 80, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"syn-ack", tcpPkt(db1, web1, 80, 1000, synack), true, &idDB1, 1, AllowedByFlow, 0, 0},
			{"idle past pending", tcpPkt(db1, web1, 80, 1000, ack), true, &idDB1, 1 + ns(cfg.TCPTimeout) - 1, AllowedByFlow, 0, 0},
			{"idle past established", tcpPkt(db1, web1, 80, 1000, ack), true, &idDB1, 1 + 2*ns(cfg.TCPTimeout), Denied, -1, ReasonPolicyDenied},
		}},
		{"tcp rst closes quickly", []step{
			{"syn", tcpPkt(web1, db1, 1000, 80, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"syn-ack", tcpPkt(db1, web1, 80, 1000, synack), true, &idDB1, 1, AllowedByFlow, 0, 0},
			{"rst", tcpPkt(web1, db1, 1000, 80, rst), false, nil, 2, AllowedByFlow, 0, 0},
			{"after close timeout", tcpPkt(db1, web1, 80, 1000, ack), true, &idDB1, 2 + ns(cfg.TCPClosingTimeout), Denied, -1, ReasonPolicyDenied},
		}},
		{"tcp fin both ways closes quickly", []step{
			{"syn", tcpPkt(web1, db1, 1000, 80, syn), false, nil, 0, AllowedByRule, 0, 0},
			{"syn-ack", tcpPkt(db1, web1, 80, 1000, synack), true, &idDB1, 1, AllowedByFlow, 0, 0},
			{"fin out", tcpPkt(web1, db1, 1000, 80, fin), false, nil, 2, AllowedByFlow, 0, 0},
			{"one fin keeps it established", tcpPkt(db1, web1, 80, 1000, ack), true, &idDB1, 2 + ns(cfg.TCPClosingTimeout), AllowedByFlow, 0, 0},
			{"fin in", tcpPkt(db1, web1, 80, 1000, fin), true, &idDB1, 3 + ns(cfg.TCPClosingTimeout), AllowedByFlow, 0, 0},
			{"after close timeout", tcpPkt(db1, web1, 80, 1000, ack), true, &idDB1, 3 + 2*ns(cfg.TCPClosingTimeout), Denied, -1, ReasonPolicyDenied},
		}},
		{"udp", []step{
			{"out", udpPkt(web1, db1, 1000, 53), false, nil, 0, AllowedByRule, 0, 0},
			{"answer in time", udpPkt(db1, web1, 53, 1000), true, &idDB1, ns(cfg.UDPTimeout) - 1, AllowedByFlow, 0, 0},
			{"answer refreshes", udpPkt(db1, web1, 53, 1000), true, &idDB1, 2*ns(cfg.UDPTimeout) - 2, AllowedByFlow, 0, 0},
			{"too late", udpPkt(db1, web1, 53, 1000), true, &idDB1, 3 * ns(cfg.UDPTimeout), Denied, -1, ReasonPolicyDenied},
		}},
		{"icmp", []step{
			{"request", icmpEcho(web1, db1, 1, false), false, nil, 0, AllowedByRule, 0, 0},
			{"reply in time", icmpEcho(db1, web1, 1, true), true, &idDB1, ns(cfg.ICMPTimeout) - 1, AllowedByFlow, 0, 0},
			{"reply too late", icmpEcho(db1, web1, 1, true), true, &idDB1, 3 * ns(cfg.ICMPTimeout), Denied, -1, ReasonPolicyDenied},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, cfg, s)
			run(t, e, tt.steps)
		})
	}
	// Sweep removes what expired.
	e := newEngine(t, cfg, s)
	for i := range 100 {
		e.Outbound(udpPkt(web1, db1, uint16(1000+i), 53), 0)
	}
	if st := e.Stats(); st.Flows != 100 {
		t.Fatalf("flows = %d", st.Flows)
	}
	e.Sweep(ns(cfg.UDPTimeout))
	if st := e.Stats(); st.Flows != 0 || st.Expired != 100 {
		t.Fatalf("after Sweep: %+v", st)
	}
}

func TestEngine_TableFullEvicts(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.MaxFlows, cfg.MaxFlowsPerPeer = 64, 0 // eviction, not the quota (TestEngine_FlowQuota)
	s := mustCompile(t, "default: deny\nrules: [{from: {groups: [web]}, to: {any: true}}]\n", cluster())
	e := newEngine(t, cfg, s)
	const n = 5000
	for i := range n {
		if v := e.Outbound(udpPkt(web1, db1, uint16(1000+i), 53), int64(i)); v.Decision != AllowedByRule {
			t.Fatalf("flow %d: %+v", i, v)
		}
	}
	st := e.Stats()
	per := (cfg.MaxFlows + numShards - 1) / numShards
	if st.Flows > per*numShards || st.Flows < cfg.MaxFlows/2 {
		t.Fatalf("flows = %d, limit %d", st.Flows, per*numShards)
	}
	if st.Added != n || st.Evicted != uint64(n-st.Flows) {
		t.Fatalf("stats %+v: want %d added and every surplus counted as evicted", st, n)
	}
	// The newest flow survived; eviction takes the ones closest to expiry.
	if v := e.Inbound(udpPkt(db1, web1, 53, uint16(1000+n-1)), &idDB1, n); v.Decision != AllowedByFlow {
		t.Fatalf("newest flow evicted: %+v", v)
	}
}

func TestEngine_ReloadRechecksFlows(t *testing.T) {
	r := cluster()
	s := mustCompile(t, issueExample, r)
	e := newEngine(t, DefaultLocalConfig(), s)
	run(t, e, []step{
		{"syn", tcpPkt(web1, db1, 40000, 5432, syn), true, &idWeb1, 0, AllowedByRule, 0, 0},
		{"reply", tcpPkt(db1, web1, 5432, 40000, synack), false, nil, 1, AllowedByFlow, 0, 0},
	})
	// A new document that no longer lets web reach db.
	e.Load(mustCompile(t, "default: deny\nrules: [{name: ping, from: {any: true}, to: {any: true, proto: icmp}}]\n", r))
	run(t, e, []step{
		// An outbound reply cannot re-check a peer-opened flow (no identity at hand) ...
		{"stale reply out", tcpPkt(db1, web1, 5432, 40000, ack), false, nil, 2, AllowedByFlow, 0, 0},
		// ... the peer's next packet does, and ends the flow.
		{"next packet in", tcpPkt(web1, db1, 40000, 5432, ack), true, &idWeb1, 3, Denied, -1, ReasonPolicyDenied},
		{"flow gone", tcpPkt(db1, web1, 5432, 40000, ack), false, nil, 4, Denied, -1, ReasonPolicyDenied},
	})

	// A catalog change: Rebind moves the db service; a flow this host opened to the
	// old instance is re-checked on its next packet in either direction.
	e2 := newEngine(t, DefaultLocalConfig(), s)
	run(t, e2, []step{
		{"syn out", tcpPkt(web1, db1, 40000, 5432, syn), false, nil, 0, AllowedByRule, 0, 0},
	})
	r.svcs["db"] = []Instance{{Addr: web2, Port: 5432, Proto: ProtoTCP}}
	e2.Load(s.Rebind())
	run(t, e2, []step{
		{"reply in after the move", tcpPkt(db1, web1, 5432, 40000, synack), true, &idDB1, 1, Denied, -1, ReasonPolicyDenied},
		{"to the new instance", tcpPkt(web1, web2, 40000, 5432, syn), false, nil, 2, AllowedByRule, 0, 0},
	})
	// A re-check that still allows keeps the flow and its rule.
	e2.Load(e2.Current().Rebind())
	run(t, e2, []step{
		{"still allowed", tcpPkt(web2, web1, 5432, 40000, synack), true, &idWeb2, 3, AllowedByFlow, 0, 0},
	})
}

func TestEngine_CountersPerRule(t *testing.T) {
	s := mustCompile(t, issueExample, cluster())
	e := newEngine(t, DefaultLocalConfig(), s)
	for i := range 3 {
		e.Inbound(tcpPkt(web1, db1, uint16(40000+i), 5432, syn), &idWeb1, 0)
		e.Inbound(tcpPkt(web1, db1, uint16(40000+i), 5432, ack), &idWeb1, 1) // flow, not counted as a hit
	}
	for range 2 {
		e.Inbound(tcpPkt(web1, db1, 40000, 22, syn), &idWeb1, 0)
	}
	e.Outbound(icmpEcho(db1, mon1, 1, false), 0)
	st := s.Stats()
	got := fmt.Sprint(st[0].Hits, st[0].Drops, st[1].Hits, st[2].Hits, st[3].Drops)
	if got != "3 0 0 1 2" {
		t.Fatalf("hits/drops web-db, scrape, ping, default = %s, want 3 0 0 1 2 (%+v)", got, st)
	}
	if d := e.Stats().Drops[ReasonPolicyDenied]; d != 2 {
		t.Fatalf("policy_denied = %d", d)
	}
	// Rebind keeps the document's counters.
	if n := s.Rebind().Stats(); n[0].Hits != 3 {
		t.Fatalf("counters lost by Rebind: %+v", n)
	}
}

func TestEngine_Fragments(t *testing.T) {
	s := mustCompile(t, "default: deny\nrules: [{from: {groups: [web]}, to: {any: true, ports: [\"53/udp\"]}}]\n", cluster())
	e := newEngine(t, DefaultLocalConfig(), s)
	first := fragment4(udpPkt(web1, db1, 1000, 53), 77, 0, true)
	later := fragment4(testkit.IP(web1, db1, ipProtoUDP, make([]byte, 16)), 77, 24, false)
	stray := fragment4(testkit.IP(web1, db1, ipProtoUDP, make([]byte, 16)), 78, 24, false)
	denied := fragment4(udpPkt(web1, db1, 1000, 54), 79, 0, true)
	deniedLater := fragment4(testkit.IP(web1, db1, ipProtoUDP, make([]byte, 16)), 79, 24, false)
	tcpOverlap := fragment4(testkit.IP(web1, db1, ipProtoTCP, make([]byte, 16)), 80, 8, false)
	run(t, e, []step{
		{"later before first", later, true, &idWeb1, 0, Denied, -1, ReasonFragment},
		{"first", first, true, &idWeb1, 1, AllowedByRule, 0, 0},
		{"later", later, true, &idWeb1, 2, AllowedByFlow, 0, 0},
		{"stray later", stray, true, &idWeb1, 2, Denied, -1, ReasonFragment},
		{"denied first", denied, true, &idWeb1, 2, Denied, -1, ReasonPolicyDenied},
		{"later of a denied first", deniedLater, true, &idWeb1, 3, Denied, -1, ReasonFragment},
		{"tcp fragment at offset 8", tcpOverlap, true, &idWeb1, 3, Denied, -1, ReasonMalformed},
		{"later after timeout", later, true, &idWeb1, 2 + int64(DefaultLocalConfig().FragmentTimeout), Denied, -1, ReasonFragment},
	})
}

func TestEngine_NoPolicyAllowsUntracked(t *testing.T) {
	e := newEngine(t, DefaultLocalConfig(), nil)
	for _, p := range [][]byte{tcpPkt(web1, db1, 1, 22, syn), {0xff, 0x00}, nil} {
		if v := e.Outbound(p, 0); v.Decision != AllowedByDefault {
			t.Fatalf("no policy: %+v", v)
		}
	}
	if st := e.Stats(); st.Flows != 0 {
		t.Fatalf("tracked without a policy: %+v", st)
	}
	if v := e.Test(web1, db1, 22, ProtoTCP); v.Decision != AllowedByDefault {
		t.Fatalf("Test without policy: %+v", v)
	}
}

func TestEngine_MalformedDenied(t *testing.T) {
	e := newEngine(t, DefaultLocalConfig(), mustCompile(t, "", cluster()))
	for _, p := range [][]byte{nil, {0x45}, tcpPkt(web1, db1, 1, 2, syn)[:30], {0x00, 0x01, 0x02}} {
		if v := e.Inbound(p, &idWeb1, 0); v != (Verdict{Decision: Denied, Rule: -1, Reason: ReasonMalformed}) {
			t.Fatalf("%x: %+v", p, v)
		}
	}
	if d := e.Stats().Drops[ReasonMalformed]; d != 4 {
		t.Fatalf("malformed drops = %d", d)
	}
}

func TestNew_ValidatesConfig(t *testing.T) {
	c := DefaultConfig()
	c.MaxFlows = 0
	if _, err := New(c); err == nil {
		t.Fatal("MaxFlows 0 accepted")
	}
	c = DefaultConfig()
	c.UDPTimeout = 0
	if _, err := New(c); err == nil {
		t.Fatal("UDPTimeout 0 accepted")
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

var _ = netip.Addr{}

// Datapath goroutines judge packets while the control path swaps Sets and sweeps: run
// under -race, the verdicts stay consistent and nothing races.
func TestEngine_ConcurrentLoadAndJudge(t *testing.T) {
	r := cluster()
	a := mustCompile(t, issueExample, r)
	b := mustCompile(t, "default: deny\nrules: [{name: all-web, from: {groups: [web]}, to: {any: true}}]\n", r)
	cfg := DefaultLocalConfig()
	cfg.MaxFlows = 8192 // no eviction: an evicted flow's reply would be a new flow, and denied
	cfg.MaxFlowsPerPeer = 0
	e := newEngine(t, cfg, a)
	done := make(chan struct{})
	errs := make(chan string, 4)
	for g := range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 3000 {
				sport := uint16(1000 + g*5000 + i%500)
				now := int64(i)
				in := e.Inbound(tcpPkt(web1, db1, sport, 5432, syn), &idWeb1, now)
				out := e.Outbound(tcpPkt(db1, web1, 5432, sport, synack), now)
				// web → db:5432 is allowed by both Sets, so the flow and its reply pass.
				if !in.Allowed() || !out.Allowed() {
					select {
					case errs <- fmt.Sprintf("goroutine %d packet %d: %+v / %+v", g, i, in, out):
					default:
					}
					return
				}
			}
		}()
	}
	for i := range 300 {
		if i%2 == 0 {
			e.Load(b)
		} else {
			e.Load(a.Rebind())
		}
		e.Sweep(int64(i * 10))
		_ = e.Stats()
		_ = e.Current().Stats()
	}
	for range 3 {
		<-done
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if st := e.Stats(); st.Evicted != 0 || st.Flows == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// An IPv6 datagram whose fragmentable part starts with destination options: the later
// fragments name dstopts as their next header, the first is UDP after the options.
func TestEngine_IPv6FragmentsWithDestinationOptions(t *testing.T) {
	s := mustCompile(t, "default: deny\nrules: [{from: {groups: [web]}, to: {any: true, ports: [\"53/udp\"]}}]\n", cluster())
	e := newEngine(t, DefaultLocalConfig(), s)
	first := withExt(udpPkt(web6, db6, 1000, 53), 44, 60)
	first[43] |= 1              // M: more fragments
	first[44], first[47] = 0, 9 // identification 9
	later := withExt(testkit.IP(web6, db6, 60, make([]byte, 16)), 44)
	binary.BigEndian.PutUint16(later[42:44], 1280/8<<3)
	later[47] = 9
	if f, ok := Classify(later); !ok || f.Frag != FragLater || f.Proto != 60 {
		t.Fatalf("later fragment classified as %+v, %v", f, ok)
	}
	run(t, e, []step{
		{"first", first, true, &idWeb1, 0, AllowedByRule, 0, 0},
		{"later", later, true, &idWeb1, 1, AllowedByFlow, 0, 0},
	})
}
