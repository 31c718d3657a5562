package catalog

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

type noSource struct{}

func (noSource) Instances(string, bool) []Instance  { return nil }
func (noSource) NodeAddr(string) (netip.Addr, bool) { return netip.Addr{}, false }
func (noSource) Index() uint64                      { return 1 }

// NAME.client.DOMAIN answers the agent's stock WireGuard clients through the hook; other
// shapes of the name and unknown clients are NXDOMAIN.
func TestDNSServer_ClientNames(t *testing.T) {
	cfg := DefaultDNSConfig()
	cfg.Clients = func(name string) (netip.Addr, bool) {
		if name == "phone" {
			return netip.MustParseAddr("10.42.3.200"), true
		}
		return netip.Addr{}, false
	}
	s, err := NewDNSServer(cfg, noSource{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"phone.client.weft.": dns.RcodeSuccess, "PHONE.client.weft.": dns.RcodeSuccess,
		"laptop.client.weft.": dns.RcodeNameError, "x.phone.client.weft.": dns.RcodeNameError, "client.weft.": dns.RcodeNameError} {
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		m := s.answer(req, true, netip.MustParseAddr("127.0.0.1"))
		if m.Rcode != want {
			t.Errorf("%s: rcode %d, want %d", name, m.Rcode, want)
		}
		if want == dns.RcodeSuccess && (len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.42.3.200") {
			t.Errorf("%s: answer %v", name, m.Answer)
		}
	}
}
