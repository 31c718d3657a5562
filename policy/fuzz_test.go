package policy

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
)

func FuzzPolicy_Parse(f *testing.F) {
	for _, seed := range []string{
		issueExample,
		fiftyRules(),
		`{"version": 3, "default": "deny", "rules": [{"name": "a", "from": {"groups": ["web"]}, "to": {"services": ["db"], "ports": ["5432/tcp", 53, "8000-8100/udp"]}}]}`,
		"rules: [{action: deny, from: {hosts: [h1], cidrs: [fd00::/8, 10.0.0.1]}, to: {any: true}, proto: udp, ports: [\"1-65535\"]}]\n",
		"default: allow\n",
		"",
		"rules: []\n",
		"x: &a {any: true}\ny: *a\n",
		"rules: [{from: {any: true}, to: {any: true, ports: [\"70000/tcp\"]}}]",
		"version: 18446744073709551615\n",
	} {
		f.Add([]byte(seed))
	}
	r := cluster()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("reparse of\n%s\nfailed: %v", out, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("parse → marshal → parse changed the document:\n%+v\n%+v\nvia\n%s", d, d2, out)
		}
		out2, err := d2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable:\n%s\n%s", out, out2)
		}
		if _, err := Compile(d, r); err != nil {
			t.Fatalf("a parsed document does not compile: %v", err)
		}
	})
}

// checkVerdict asserts that v is exactly one of: allowed by a named rule, allowed by the
// flow table, allowed by default, or denied with a reason; and that the rule it names
// could have decided so.
func checkVerdict(t *testing.T, s *Set, v Verdict) {
	t.Helper()
	n := int32(s.Len())
	ruleDenies := func(i int32) bool { return s.rules[i].deny }
	switch v.Decision {
	case AllowedByRule:
		if v.Reason != ReasonNone || v.Rule < 0 || v.Rule >= n || ruleDenies(v.Rule) {
			t.Fatalf("allowed by rule, inconsistent: %+v", v)
		}
	case AllowedByFlow:
		if v.Reason != ReasonNone || v.Rule < -1 || v.Rule >= n || v.Rule >= 0 && ruleDenies(v.Rule) || v.Rule == -1 && s.deny {
			t.Fatalf("allowed by flow, inconsistent: %+v", v)
		}
	case AllowedByDefault:
		if v.Reason != ReasonNone || v.Rule != -1 || s.deny {
			t.Fatalf("allowed by default, inconsistent: %+v", v)
		}
	case Denied:
		switch v.Reason {
		case ReasonPolicyDenied:
			if v.Rule < -1 || v.Rule >= n || v.Rule >= 0 && !ruleDenies(v.Rule) || v.Rule == -1 && !s.deny {
				t.Fatalf("policy denied, inconsistent: %+v", v)
			}
		case ReasonMalformed, ReasonFragment:
			if v.Rule != -1 {
				t.Fatalf("denied for %v with a rule: %+v", v.Reason, v)
			}
		default:
			t.Fatalf("denied without a reason: %+v", v)
		}
	default:
		t.Fatalf("no decision: %+v", v)
	}
}

func FuzzPolicy_Classify(f *testing.F) {
	seeds := [][]byte{
		tcpPkt(web1, db1, 40000, 5432, syn),
		tcpPkt(db1, web1, 5432, 40000, synack),
		tcpPkt(web1, db1, 40000, 22, syn),
		udpPkt(web1, mon1, 33000, 53),
		icmpEcho(web1, db1, 7, false),
		icmpEcho(web6, db6, 7, true),
		tcpPkt(web6, db6, 1, 5432, syn),
		withExt(udpPkt(web6, db6, 7, 8), 0, 60, 51, 44),
		fragment4(udpPkt(web1, db1, 1000, 53), 77, 0, true),
		fragment4(testkit.IP(web1, db1, ipProtoUDP, make([]byte, 16)), 77, 24, false),
		testkit.IP(web1, db1, 47, make([]byte, 4)),
		{0x45},
		{0x60, 0, 0, 0, 0, 8, 44},
	}
	for i, s := range seeds {
		f.Add(s, i%2 == 0, i%3 == 0)
	}
	r := cluster()
	deny := mustCompile(f, issueExample, r)
	allow := mustCompile(f, "rules: [{name: no-ssh, action: deny, from: {any: true}, to: {any: true, ports: [\"22/tcp\"]}}, {from: {groups: [web]}, to: {any: true}}]\n", r)
	cfg := DefaultLocalConfig()
	cfg.MaxFlows, cfg.MaxFlowsPerPeer = 64, 16
	f.Fuzz(func(t *testing.T, pkt []byte, inbound, defaultAllow bool) {
		s := deny
		if defaultAllow {
			s = allow
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.Load(s)
		flow, ok := Classify(pkt)
		for round := range 3 {
			var v Verdict
			if inbound {
				v = e.Inbound(pkt, &idWeb1, int64(round))
			} else {
				v = e.Outbound(pkt, int64(round))
			}
			checkVerdict(t, s, v)
			if !ok && v.Reason != ReasonMalformed {
				t.Fatalf("Classify refused the packet but the verdict is %+v", v)
			}
			if ok && v.Reason == ReasonMalformed {
				t.Fatalf("Classify accepted %+v but the verdict is malformed", flow)
			}
			if round > 0 && ok && flow.Frag != FragLater && v.Decision == AllowedByRule {
				t.Fatalf("round %d: an admitted flow was evaluated again: %+v", round, v)
			}
			// The reverse direction of whatever was admitted.
			if ok && flow.Frag != FragLater && len(pkt) >= 20 {
				rev := reverse(pkt, flow)
				if rev != nil {
					var rv Verdict
					if inbound {
						rv = e.Outbound(rev, int64(round))
					} else {
						rv = e.Inbound(rev, &idDB1, int64(round))
					}
					checkVerdict(t, s, rv)
					if v.Allowed() && v.Decision != AllowedByDefault && rv.Decision != AllowedByFlow {
						t.Fatalf("reply to an admitted flow not passed by the table: %+v then %+v", v, rv)
					}
				}
			}
		}
	})
}

// reverse returns a copy of pkt with addresses and (for TCP/UDP) ports swapped, or nil.
func reverse(pkt []byte, f Flow) []byte {
	r := bytes.Clone(pkt)
	var l4 int
	switch pkt[0] >> 4 {
	case 4:
		copy(r[12:16], pkt[16:20])
		copy(r[16:20], pkt[12:16])
		l4 = int(pkt[0]&0x0f) * 4
	case 6:
		if f.Proto != pkt[6] {
			return nil // extension headers: keep it simple
		}
		copy(r[8:24], pkt[24:40])
		copy(r[24:40], pkt[8:24])
		l4 = 40
	default:
		return nil
	}
	if f.Class == ProtoTCP || f.Class == ProtoUDP {
		copy(r[l4:l4+2], pkt[l4+2:l4+4])
		copy(r[l4+2:l4+4], pkt[l4:l4+2])
	}
	if f.Class == ProtoICMP {
		return nil // an echo request reversed is still a request; types differ per family
	}
	return r
}
