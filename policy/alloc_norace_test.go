//go:build !race

package policy

import (
	"encoding/binary"
	"testing"
)

// The race detector allocates on its own; these run without -race (make test does).
func TestEngine_ZeroAllocsPerPacket(t *testing.T) {
	s := mustCompile(t, fiftyRules(), cluster())
	e := newEngine(t, DefaultConfig(), s)
	// Established flows: one opened by a peer, one opened here.
	inSyn := tcpPkt(web1, db1, 40000, 5432, syn)
	inAck := tcpPkt(web1, db1, 40000, 5432, ack)
	outReply := tcpPkt(db1, web1, 5432, 40000, ack)
	e.Inbound(inSyn, &idWeb1, 0)
	outUDP := udpPkt(db1, mon1, 33000, 53)
	inUDP := udpPkt(mon1, db1, 53, 33000)
	e.Outbound(outUDP, 0)
	// New flows: the source port changes every run.
	newIn := tcpPkt(web1, db1, 1, 5432, syn)
	newOut := udpPkt(db1, mon1, 1, 53)
	denied := tcpPkt(web1, db1, 1, 22, syn)
	port := uint16(1)
	next := func(p []byte) []byte {
		port++
		binary.BigEndian.PutUint16(p[20:22], port)
		return p
	}
	var now int64
	cases := []struct {
		name string
		fn   func() Verdict
		want Decision
	}{
		{"inbound established", func() Verdict { return e.Inbound(inAck, &idWeb1, now) }, AllowedByFlow},
		{"outbound reply", func() Verdict { return e.Outbound(outReply, now) }, AllowedByFlow},
		{"outbound established udp", func() Verdict { return e.Outbound(outUDP, now) }, AllowedByFlow},
		{"inbound udp reply", func() Verdict { return e.Inbound(inUDP, &idMon1, now) }, AllowedByFlow},
		{"inbound new flow", func() Verdict { return e.Inbound(next(newIn), &idWeb1, now) }, AllowedByRule},
		{"outbound new flow", func() Verdict { return e.Outbound(next(newOut), now) }, AllowedByRule},
		{"inbound denied", func() Verdict { return e.Inbound(next(denied), &idWeb1, now) }, Denied},
	}
	for _, c := range cases {
		var bad Verdict
		allocs := testing.AllocsPerRun(2000, func() {
			now++
			if v := c.fn(); v.Decision != c.want {
				bad = v
			}
		})
		if bad != (Verdict{}) {
			t.Errorf("%s: verdict %+v, want %v", c.name, bad, c.want)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocs per packet, want 0", c.name, allocs)
		}
	}
}
