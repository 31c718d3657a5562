package catalog

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCatalogCodec_Address(t *testing.T) {
	in := []ServiceHealth{{Service: Service{Name: "redis", Port: 6379, Address: netip.MustParseAddr("10.42.3.7")}}, {Service: Service{Name: "web", Port: 80}}}
	v, err := EncodeCatalog(in)
	if err != nil {
		t.Fatal(err)
	}
	if v != "1;redis@10.42.3.7:6379;web:80" {
		t.Fatalf("encoded %q", v)
	}
	out, err := DecodeCatalog(v)
	if err != nil || out[0].Service.Address != in[0].Service.Address || out[1].Service.Address.IsValid() {
		t.Fatalf("%+v %v", out, err)
	}
	for _, bad := range []string{"1;r@:1", "1;r@10.42.3.07:1", "1;r@::1:1", "1;r@0.0.0.0:1", "1;r@10.42.3.7@1.2.3.4:1", "1;r@host:1"} {
		if _, err := DecodeCatalog(bad); !errors.Is(err, ErrBadCatalog) {
			t.Errorf("%q decoded: %v", bad, err)
		}
	}
}

// A hostile member announces a service at an address outside its own subnet (another
// host's container, or anything else): the service is dropped, the member's others kept.
func TestCatalog_ForeignServiceAddressDropped(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{Addr: netip.MustParseAddr("10.42.1.1")})
	err := c.UpdateNode("evil", netip.MustParseAddr("10.42.9.1"), "1;api@10.42.1.5:80;own@10.42.9.7:80;plain:81")
	if !errors.Is(err, ErrForeignAddress) {
		t.Fatalf("want ErrForeignAddress, got %v", err)
	}
	if n := c.ForeignAddressDrops(); n != 1 {
		t.Fatalf("%d drops counted, want 1", n)
	}
	if ins := c.Instances("api", false); len(ins) != 0 {
		t.Fatalf("forged service kept: %+v", ins)
	}
	own := c.Instances("own", false)
	if len(own) != 1 || own[0].Addr != netip.MustParseAddr("10.42.9.7") {
		t.Fatalf("own-subnet service: %+v", own)
	}
	if p := c.Instances("plain", false); len(p) != 1 || p[0].Addr != netip.MustParseAddr("10.42.9.1") {
		t.Fatalf("plain service: %+v", p)
	}
	// Locally, a registration outside this host's subnet is refused with what to do.
	if err := c.Register(Service{Name: "x", Port: 1, Address: netip.MustParseAddr("10.42.2.3")}); !errors.Is(err, ErrForeignAddress) {
		t.Fatalf("local foreign address: %v", err)
	}
	if err := c.Register(Service{Name: "x", Port: 1, Address: netip.MustParseAddr("10.42.1.3")}); err != nil {
		t.Fatal(err)
	}
	if in := c.Instances("x", false); len(in) != 1 || in[0].Addr != netip.MustParseAddr("10.42.1.3") {
		t.Fatalf("local container service: %+v", in)
	}
}
