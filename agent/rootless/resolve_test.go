package rootless

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/netproxy"
)

func TestResolver_OverlayOnly(t *testing.T) {
	cfg := config.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.NewCatalog(catalog.CatalogConfig{Node: "me", Addr: netip.MustParseAddr("10.42.1.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if err := cat.Register(catalog.Service{Name: "web", Port: 80, Tags: []string{"blue"}}); err != nil {
		t.Fatal(err)
	}
	r := &resolver{domain: cfg.DNS.Domain, clusterCIDR: cfg.ClusterCIDR.Prefix, cat: cat,
		hasPeer: func(netip.Addr) bool { return false }} // no peer table
	for _, tc := range []struct {
		host string
		want string // address, or the error's sentinel
	}{
		{"web.service.weft", "10.42.1.1"},
		{"WEB.service.weft.", "10.42.1.1"},
		{"blue.web.service.weft", "10.42.1.1"},
		{"green.web.service.weft", "unknown"},
		{"me.node.weft", "10.42.1.1"},
		{"nobody.node.weft", "unknown"},
		{"db.service.weft", "unknown"},
		{"a.b.c.web.service.weft", "unknown"},
		{"10.42.7.9", "10.42.7.9"},
		{"::ffff:10.42.7.9", "10.42.7.9"},
		{"192.0.2.1", "not allowed"},
		{"example.com", "not allowed"},
		{"weft", "not allowed"},
	} {
		ip, err := r.resolve(context.Background(), tc.host)
		var got string
		switch {
		case err == nil:
			got = ip.String()
		case errors.Is(err, netproxy.ErrUnknownName):
			got = "unknown"
		case errors.Is(err, netproxy.ErrNotAllowed):
			got = "not allowed"
		default:
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.host, got, err, tc.want)
		}
	}
}
