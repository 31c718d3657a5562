package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
)

// gather collects cs into "name{label=value,...}" → value.
func gather(t *testing.T, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += ","
				}
				k += l.GetName() + "=" + l.GetValue()
			}
			k += "}"
			switch {
			case m.GetCounter() != nil:
				out[k] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[k] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestCollector_Source: each metric reads its Source function; what a Source lacks or
// reports as not running is left out (drops, DNS) or zero (members, services).
func TestCollector_Source(t *testing.T) {
	src := Source{
		Peers: func() []api.Peer {
			return []api.Peer{{PublicKey: "K", Name: "b", RxBytes: 10, TxBytes: 20, RxPackets: 1, TxPackets: 2, Handshakes: 3,
				LastHandshake: time.Unix(5, 0), Drops: map[string]uint64{"replayed": 4}, State: "up", HandshakeFailures: 6, NoReplyHandshakes: 7, PathMTU: 1400}}
		},
		Members:     func() []api.Member { return []api.Member{{Name: "a", Status: "alive"}, {Name: "b", Status: "failed"}} },
		Drops:       func() (map[string]uint64, bool) { return map[string]uint64{"wrong_vni": 8}, true },
		ProxyEvents: func() map[string]uint64 { return map[string]uint64{"not_allowed": 2} },
		DNSStats:    func() (catalog.DNSStats, bool) { return catalog.DNSStats{Forwarded: 9, ForwardRefused: 1}, true },
		Instances: func() []catalog.Instance {
			return []catalog.Instance{{Health: catalog.HealthPassing}, {Health: catalog.HealthPassing}, {Health: catalog.HealthCritical}}
		},
	}
	got := gather(t, NewCollector(src), NewOpsCollector(src))
	for k, v := range map[string]float64{
		"weft_up{}": 1,
		"weft_peer_bytes_total{direction=rx,name=b,peer=K}":         10,
		"weft_peer_bytes_total{direction=tx,name=b,peer=K}":         20,
		"weft_peer_packets_total{direction=tx,name=b,peer=K}":       2,
		"weft_peer_handshakes_total{name=b,peer=K}":                 3,
		"weft_peer_path_mtu_bytes{name=b,peer=K}":                   1400,
		"weft_peer_last_handshake_timestamp_seconds{name=b,peer=K}": 5,
		"weft_peer_drops_total{name=b,peer=K,reason=replayed}":      4,
		"weft_drops_total{reason=wrong_vni}":                        8,
		"weft_proxy_events_total{event=not_allowed}":                2,
		"weft_dns_forwards_total{result=forwarded}":                 9,
		"weft_dns_forwards_total{result=refused}":                   1,
		"weft_dns_forwards_total{result=busy}":                      0,
		"weft_members{status=alive}":                                1,
		"weft_members{status=failed}":                               1,
		"weft_members{status=left}":                                 0,
		"weft_peer_state{name=b,peer=K,state=up}":                   1,
		"weft_peer_handshake_failures_total{name=b,peer=K}":         6,
		"weft_peer_no_reply_handshakes_total{name=b,peer=K}":        7,
		"weft_services{health=passing}":                             2,
		"weft_services{health=warning}":                             0,
		"weft_services{health=critical}":                            1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// An empty Source: weft_up, the build, members and services at zero; no drops or DNS.
	got = gather(t, NewCollector(Source{}), NewOpsCollector(Source{}))
	n := 0
	for k, v := range got {
		switch {
		case k == "weft_up{}", strings.HasPrefix(k, "weft_build_info{"):
		case strings.HasPrefix(k, "weft_members{"), strings.HasPrefix(k, "weft_services{"):
			if v != 0 {
				t.Errorf("empty source: %s = %v, want 0", k, v)
			}
			n++
		default:
			t.Errorf("empty source reports %s", k)
		}
	}
	if n != 4+3 {
		t.Errorf("empty source: %d member and service series, want 7: %v", n, got)
	}
}
