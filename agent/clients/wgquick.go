package clients

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// WGQuickConfig is the wg-quick text for a client.
type WGQuickConfig struct {
	Address    netip.Addr
	PrivateKey string // base64, or api.PrivateKeyPlaceholder
	DNS        netip.Addr
	DNSSearch  string // the overlay's DNS domain, without the final dot
	PeerKey    string
	Endpoint   string
	AllowedIPs netip.Prefix
	Keepalive  time.Duration
	MTU        int // the host's overlay MTU (0: omitted)
}

// String renders w as a wg-quick file.
func (w WGQuickConfig) String() string {
	var b strings.Builder
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "Address = %s/32\n", w.Address)
	fmt.Fprintf(&b, "PrivateKey = %s\n", w.PrivateKey)
	if w.MTU > 0 {
		fmt.Fprintf(&b, "MTU = %d\n", w.MTU)
	}
	if w.DNS.IsValid() {
		fmt.Fprintf(&b, "DNS = %s", w.DNS)
		if w.DNSSearch != "" {
			fmt.Fprintf(&b, ", %s", w.DNSSearch)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", w.PeerKey)
	fmt.Fprintf(&b, "Endpoint = %s\n", w.Endpoint)
	fmt.Fprintf(&b, "AllowedIPs = %s\n", w.AllowedIPs)
	if w.Keepalive > 0 {
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(w.Keepalive.Round(time.Second)/time.Second))
	}
	return b.String()
}
