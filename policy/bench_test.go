package policy

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// fiftyRules is a 50-rule policy whose rules for the benchmark's flows come last, so a
// new flow walks all the others first.
func fiftyRules() string {
	var b strings.Builder
	b.WriteString("default: deny\nrules:\n")
	for i := range 47 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - {name: r%d, from: {groups: [team%d]}, to: {groups: [db], ports: [\"%d/tcp\"]}}\n", i, i, 1000+i)
		case 1:
			fmt.Fprintf(&b, "  - {name: r%d, from: {cidrs: [172.16.%d.0/24]}, to: {any: true}}\n", i, i)
		case 2:
			fmt.Fprintf(&b, "  - {name: r%d, from: {hosts: [h%d, g%d]}, to: {hosts: [db1], ports: [\"%d-%d\"]}}\n", i, i, i, 2000+i, 2100+i)
		case 3:
			fmt.Fprintf(&b, "  - {name: r%d, from: {groups: [web]}, to: {groups: [team%d], proto: udp}}\n", i, i)
		}
	}
	b.WriteString("  - {name: web-db, from: {groups: [web]}, to: {services: [db]}}\n")
	b.WriteString("  - {name: db-dns, from: {groups: [db]}, to: {services: [dns]}}\n")
	b.WriteString("  - {name: ping, from: {any: true}, to: {any: true, proto: icmp}}\n")
	return b.String()
}

// benchFlows opens n flows web1:10000+i → db1:5432 (inbound on db1) and returns the
// packets that continue them, each padded to size bytes.
func benchFlows(b *testing.B, e *Engine, n, size int) [][]byte {
	pkts := make([][]byte, n)
	for i := range n {
		p := make([]byte, size)
		copy(p, tcpPkt(web1, db1, uint16(10000+i), 5432, ack))
		binary.BigEndian.PutUint16(p[2:4], uint16(size))
		if v := e.Inbound(p, &idWeb1, 0); v.Decision != AllowedByRule {
			b.Fatalf("flow %d: %+v", i, v)
		}
		pkts[i] = p
	}
	return pkts
}

// BenchmarkEngine_Established: one packet of one of 10,000 established flows (cycling,
// so the table is not all in cache) under a 50-rule policy.
func BenchmarkEngine_Established(b *testing.B) {
	for _, size := range []int{64, 1420, 65535} {
		b.Run(fmt.Sprintf("%d", size), func(b *testing.B) {
			e := newEngine(b, DefaultConfig(), mustCompile(b, fiftyRules(), cluster()))
			pkts := benchFlows(b, e, 10000, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if v := e.Inbound(pkts[i%len(pkts)], &idWeb1, 1); v.Decision != AllowedByFlow {
					b.Fatalf("%+v", v)
				}
			}
		})
	}
}

// BenchmarkEngine_EstablishedReply: the outbound replies of the same flows.
func BenchmarkEngine_EstablishedReply(b *testing.B) {
	e := newEngine(b, DefaultConfig(), mustCompile(b, fiftyRules(), cluster()))
	benchFlows(b, e, 10000, 64)
	replies := make([][]byte, 10000)
	for i := range replies {
		replies[i] = tcpPkt(db1, web1, 5432, uint16(10000+i), ack)
	}
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if v := e.Outbound(replies[i%len(replies)], 1); v.Decision != AllowedByFlow {
			b.Fatalf("%+v", v)
		}
	}
}

// BenchmarkEngine_NewFlow: every packet a new flow (rule walk of 48 rules, insert; once
// the table is full, an eviction too) with 10,000 flows already in the table.
func BenchmarkEngine_NewFlow(b *testing.B) {
	e := newEngine(b, DefaultConfig(), mustCompile(b, fiftyRules(), cluster()))
	benchFlows(b, e, 10000, 64)
	p := tcpPkt(web2, db1, 1, 5432, syn)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint16(p[20:22], uint16(i))
		p[15] = byte(i >> 16) // vary the source address too, beyond 65536 flows
		if v := e.Inbound(p, &idWeb2, 2); v.Decision != AllowedByRule {
			b.Fatalf("%+v", v)
		}
	}
}

// BenchmarkEngine_Denied: a refused new flow (full rule walk, default deny).
func BenchmarkEngine_Denied(b *testing.B) {
	e := newEngine(b, DefaultConfig(), mustCompile(b, fiftyRules(), cluster()))
	p := tcpPkt(none1, db1, 1, 22, syn)
	b.ReportAllocs()
	for b.Loop() {
		if v := e.Inbound(p, &idNone1, 2); v.Decision != Denied {
			b.Fatalf("%+v", v)
		}
	}
}

// BenchmarkEngine_EstablishedParallel: established flows from all Ps at once (shard
// contention).
func BenchmarkEngine_EstablishedParallel(b *testing.B) {
	e := newEngine(b, DefaultConfig(), mustCompile(b, fiftyRules(), cluster()))
	pkts := benchFlows(b, e, 10000, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Inbound(pkts[i%len(pkts)], &idWeb1, 1)
			i += 7
		}
	})
}

// BenchmarkEngine_NoPolicy is the baseline: the Engine without a Set.
func BenchmarkEngine_NoPolicy(b *testing.B) {
	e := newEngine(b, DefaultConfig(), nil)
	p := tcpPkt(web1, db1, 1, 5432, ack)
	b.ReportAllocs()
	for b.Loop() {
		e.Inbound(p, &idWeb1, 1)
	}
}

func BenchmarkClassify(b *testing.B) {
	p4 := tcpPkt(web1, db1, 1, 5432, ack)
	p6 := withExt(udpPkt(web6, db6, 1, 53), 0, 60)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := p4
		if i&1 == 1 {
			p = p6
		}
		if _, ok := Classify(p); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkSet_Rebind: the cost of following a catalog change (50 rules, 2 services).
func BenchmarkSet_Rebind(b *testing.B) {
	s := mustCompile(b, fiftyRules(), cluster())
	b.ReportAllocs()
	for b.Loop() {
		s = s.Rebind()
	}
}

// BenchmarkCompile: parse-free compilation of a 50-rule document.
func BenchmarkCompile(b *testing.B) {
	d, err := Parse([]byte(fiftyRules()))
	if err != nil {
		b.Fatal(err)
	}
	r := cluster()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(d, r); err != nil {
			b.Fatal(err)
		}
	}
}
