package api

import "testing"

func TestResolvePing(t *testing.T) {
	ps := []Peer{
		{Name: "b", PublicKey: "KB", AllowedIPs: []string{"10.42.2.0/24"}},
		{PublicKey: "KC", AllowedIPs: []string{"10.9.9.9/32", "10.42.0.0/16"}},
	}
	for _, tc := range []struct{ target, addr, key string }{
		{"b", "10.42.2.1", "KB"},
		{"KB", "10.42.2.1", "KB"},
		{"KC", "10.9.9.9", "KC"},
		{"10.42.2.7", "10.42.2.7", "KB"}, // the longest prefix wins
		{"10.42.3.7", "10.42.3.7", "KC"},
	} {
		got, err := ResolvePing(ps, tc.target)
		if err != nil || got.Addr.String() != tc.addr || got.Peer.PublicKey != tc.key {
			t.Errorf("ResolvePing(%q) = %v %s, %v; want %s %s", tc.target, got.Addr, got.Peer.PublicKey, err, tc.addr, tc.key)
		}
	}
	for _, bad := range []string{"nobody", "192.0.2.1"} {
		if _, err := ResolvePing(ps, bad); err == nil {
			t.Errorf("ResolvePing(%q): no error", bad)
		}
	}
}
