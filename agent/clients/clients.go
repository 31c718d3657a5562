package clients

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/clienttag"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/fsutil"
)

// Stock WireGuard clients (phones, laptops, wg-quick) as peers of this host:
//
//	GET    /v1/clients          []WGClient
//	POST   /v1/clients          ClientAdd → ClientAdded (the wg-quick config, printed once)
//	DELETE /v1/clients/NAME     removes the client and its peer, live
//
// A client is a static peer with WireGuard framing (bare IP in transport messages) whose
// allowed prefix is its /32. Its address comes from clients.range, by default the top of
// this host's /24 (.200–.254): the other hosts already route that /24 here, so replies
// find the client with no new gossip claim; this host forwards between the client and the
// overlay (forwarding on the TUN only). The private key is generated here and printed
// once; StateDir/clients.json (0600) keeps name, address and public key only.
//
// The host announces its clients' addresses in gossip (the clienttag.Key tag, announce),
// so that every other host judges their traffic as the client's (no groups) and never as
// this host's: a client's peer is added only after the announcement is made, and a client
// whose announcement does not fit Serf's metadata is refused.

var clientNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Deps is what the clients need of the agent: configuration values, read once, and
// functions onto the agent's live state and datapath.
type Deps struct {
	// Mode, Encryption, Netstack and Containers are the agent's mode, encryption,
	// --netstack and cni.enabled: clients need l3, wireguard, a TUN and no containers.
	Mode       string
	Encryption string
	Netstack   bool
	Containers bool
	// StateDir holds clients.json.
	StateDir string
	// Range is clients.range: FIRST-LAST or an IPv4 prefix inside the host's subnet; ""
	// means .200–.254 of the subnet.
	Range string
	// Interface is the TUN the clients' packets enter on (forwarding and the guard).
	Interface string
	// ClusterCIDR is the overlay: a client's AllowedIPs, and where the guard lets it go.
	ClusterCIDR netip.Prefix
	// MTU is the overlay MTU written into a client's config (0: omitted).
	MTU int
	// DNSDomain, DNSDisabled and DNSListen are the dns section: a client is given the
	// overlay address as its DNS server when the agent serves DNS on overlay:53.
	DNSDomain   string
	DNSDisabled bool
	DNSListen   []string
	// GossipAdvertise and GossipBind are gossip.advertise and gossip.bind: the host a client
	// dials when the caller names no endpoint.
	GossipAdvertise string
	GossipBind      string
	// HostKey is this host's public key: the client's peer.
	HostKey crypto.PublicKey

	// Subnet and Address return this host's current subnet and overlay address (they move
	// with the subnet at run time).
	Subnet  func() netip.Prefix
	Address func() netip.Addr
	// Port returns the datapath's UDP port; DatapathUp reports whether the datapath (the
	// device) is up.
	Port       func() uint16
	DatapathUp func() bool
	// AddPeer puts a client into the datapath as a WireGuard-framed peer whose allowed
	// prefix is addr/32; RemovePeer takes it out; IsPeer reports whether key is a peer of
	// the datapath already.
	AddPeer    func(key crypto.PublicKey, addr netip.Addr, keepalive time.Duration) error
	RemovePeer func(key crypto.PublicKey)
	IsPeer     func(key crypto.PublicKey) bool
	// Changed is called after a client was added or removed (nil: nothing to tell).
	Changed func()
	// SetTag sets one of this host's gossip tags ("" deletes it): the clients' addresses
	// are announced in clienttag.Key. Nil: no gossip, nobody to tell.
	SetTag func(key, value string) error
	// EnableForwarding installs the client guard and turns forwarding on for Interface,
	// before the first client's peer is added; nil: the real one (tests without a device
	// replace it).
	EnableForwarding func() error
	// Problem records a condition `weft status` shows; Log is the agent's logger.
	Problem func(string)
	Log     *slog.Logger
}

// Clients is the agent's stock WireGuard clients, persisted in StateDir/clients.json.
type Clients struct {
	d Deps

	mu      sync.Mutex
	loaded  bool
	list    []api.WGClient
	forward bool            // forwarding is on for the TUN
	rules   []*netlink.Rule // the client guard (guard_linux.go)
}

// New returns the clients of d; nothing is loaded or installed until Start.
func New(d Deps) *Clients {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Problem == nil {
		d.Problem = func(string) {}
	}
	if d.Changed == nil {
		d.Changed = func() {}
	}
	return &Clients{d: d}
}

func (c *Clients) path() string { return filepath.Join(c.d.StateDir, "clients.json") }

// Supported says why clients cannot work in this mode, or nil.
func (c *Clients) Supported() error {
	switch {
	case c.d.Mode != "l3":
		return errors.New("stock WireGuard clients need mode l3 (they carry IP packets, not Ethernet frames)")
	case c.d.Encryption != "wireguard":
		return errors.New("stock WireGuard clients need encryption: wireguard")
	case c.d.Netstack:
		return errors.New("stock WireGuard clients need the TUN datapath (the host forwards for them); not with --netstack")
	case c.d.Containers:
		// The bridge's /24 route would take the clients' replies off the TUN, and the
		// containers' address store does not know the clients' addresses.
		return errors.New("stock WireGuard clients and containers (cni.enabled) share this host's /24 and cannot both run yet; use clients on a host without containers")
	}
	return nil
}

// Start loads the stored clients and adds them as peers (after the datapath).
func (c *Clients) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := os.ReadFile(c.path())
	if errors.Is(err, os.ErrNotExist) {
		c.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("clients: %w", err)
	}
	var list []api.WGClient
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("clients: %s: %w", c.path(), err)
	}
	c.loaded = true
	if len(list) == 0 {
		return nil
	}
	if err := c.Supported(); err != nil {
		return fmt.Errorf("clients: %s holds %d clients: %w", c.path(), len(list), err)
	}
	if err := c.announce(list); err != nil {
		return fmt.Errorf("clients: %s holds %d clients: %w", c.path(), len(list), err)
	}
	for _, wc := range list {
		if err := c.addPeerLocked(wc); err != nil {
			return fmt.Errorf("client %s: %w", wc.Name, err)
		}
	}
	c.list = list
	return nil
}

func (c *Clients) addPeerLocked(wc api.WGClient) error {
	key, err := crypto.ParsePublicKey(wc.PublicKey)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	if !c.forward {
		enable := c.d.EnableForwarding
		if enable == nil {
			enable = c.forwarding
		}
		if err := enable(); err != nil {
			return err
		}
		c.forward = true
	}
	return c.d.AddPeer(key, wc.Address, wc.Keepalive.Duration)
}

func (c *Clients) saveLocked() error {
	b, err := json.MarshalIndent(c.list, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(c.path(), append(b, '\n'), 0o600)
}

// addrRange returns the first and last address clients may get.
func (c *Clients) addrRange() (netip.Addr, netip.Addr, error) {
	sn := c.d.Subnet()
	if !sn.IsValid() || !sn.Addr().Is4() || sn.Bits() != 24 {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("WireGuard clients get addresses .200-.254 of a /24 subnet, and this host has %v: they need subnet_len 24", sn)
	}
	base := sn.Addr().As4()
	first, last := base, base
	first[3], last[3] = 200, 254
	lo, hi := netip.AddrFrom4(first), netip.AddrFrom4(last)
	if r := c.d.Range; r != "" {
		var err error
		if lo, hi, err = parseRange(r); err != nil {
			return lo, hi, err
		}
		if !sn.Contains(lo) || !sn.Contains(hi) {
			return lo, hi, fmt.Errorf("clients.range %s: must lie inside this host's subnet %s (the other hosts route it here; a range outside it would need its own gossip claim, which weft does not make yet)", r, sn)
		}
	}
	return lo, hi, nil
}

func parseRange(r string) (netip.Addr, netip.Addr, error) {
	if p, err := netip.ParsePrefix(r); err == nil && p.Addr().Is4() {
		p = p.Masked()
		lo := p.Addr()
		b := lo.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v |= 1<<(32-p.Bits()) - 1
		return lo, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
	}
	from, to, ok := strings.Cut(r, "-")
	lo, err1 := netip.ParseAddr(strings.TrimSpace(from))
	hi, err2 := netip.ParseAddr(strings.TrimSpace(to))
	if !ok || err1 != nil || err2 != nil || !lo.Is4() || !hi.Is4() || hi.Less(lo) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("clients.range %q: want FIRST-LAST (10.42.3.200-10.42.3.254) or an IPv4 prefix", r)
	}
	return lo, hi, nil
}

// usableAddr: not the host's own address, not the /24's network or broadcast.
func (c *Clients) usableAddr(ip netip.Addr) bool {
	b := ip.As4()
	return ip != c.d.Address() && b[3] != 0 && b[3] != 255
}

// add allocates, stores and adds a client; it returns the record and the private key (zero
// when the caller gave the public key).
func (c *Clients) add(req api.ClientAdd) (api.WGClient, crypto.PrivateKey, error) {
	var priv crypto.PrivateKey
	if err := c.Supported(); err != nil {
		return api.WGClient{}, priv, err
	}
	if !clientNameRE.MatchString(req.Name) {
		return api.WGClient{}, priv, fmt.Errorf("client name %q: lower-case letters, digits and inner dashes, at most 63 (it becomes NAME.client.%s)", req.Name, c.d.DNSDomain)
	}
	wc := api.WGClient{Name: req.Name, Keepalive: req.Keepalive, Created: time.Now().UTC().Truncate(time.Second)}
	if req.PublicKey != "" {
		k, err := crypto.ParsePublicKey(req.PublicKey)
		if err != nil {
			return api.WGClient{}, priv, fmt.Errorf("public key: %w", err)
		}
		wc.PublicKey = k.String()
	} else {
		var err error
		if priv, err = crypto.GeneratePrivateKey(); err != nil {
			return api.WGClient{}, priv, err
		}
		wc.PublicKey = priv.Public().String()
	}
	if wc.PublicKey == c.d.HostKey.String() {
		return api.WGClient{}, priv, errors.New("public key is this host's own")
	}
	lo, hi, err := c.addrRange()
	if err != nil {
		return api.WGClient{}, priv, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		return api.WGClient{}, priv, errors.New("the agent is still starting")
	}
	used := map[netip.Addr]bool{}
	for _, o := range c.list {
		if o.Name == wc.Name {
			return api.WGClient{}, priv, fmt.Errorf("client %s exists (weft client remove %s first)", wc.Name, wc.Name)
		}
		if o.PublicKey == wc.PublicKey {
			return api.WGClient{}, priv, fmt.Errorf("public key is client %s's already", o.Name)
		}
		used[o.Address] = true
	}
	if k, _ := crypto.ParsePublicKey(wc.PublicKey); c.d.IsPeer(k) {
		return api.WGClient{}, priv, errors.New("public key belongs to a peer of this host already")
	}
	if req.Address.IsValid() {
		ip := req.Address.Unmap()
		sn := c.d.Subnet()
		switch {
		case !ip.Is4() || !sn.Contains(ip):
			return api.WGClient{}, priv, fmt.Errorf("address %s: must be an IPv4 address of this host's subnet %s", ip, sn)
		case !c.usableAddr(ip):
			return api.WGClient{}, priv, fmt.Errorf("address %s: the host's own, or the subnet's network or broadcast address", ip)
		case used[ip]:
			return api.WGClient{}, priv, fmt.Errorf("address %s is taken by another client", ip)
		}
		wc.Address = ip
	} else {
		for ip := lo; ip.IsValid() && !hi.Less(ip); ip = ip.Next() {
			if !used[ip] && c.usableAddr(ip) {
				wc.Address = ip
				break
			}
		}
		if !wc.Address.IsValid() {
			return api.WGClient{}, priv, fmt.Errorf("no free client address in %s-%s (remove a client or set clients.range)", lo, hi)
		}
	}
	// Announced before its peer exists: no packet of the client reaches another host
	// before that host can tell it from this one.
	if err := c.announce(append(slices.Clone(c.list), wc)); err != nil {
		return api.WGClient{}, priv, err
	}
	if err := c.addPeerLocked(wc); err != nil {
		c.reannounceLocked()
		return api.WGClient{}, priv, err
	}
	c.list = append(c.list, wc)
	if err := c.saveLocked(); err != nil {
		c.list = c.list[:len(c.list)-1]
		k, _ := crypto.ParsePublicKey(wc.PublicKey)
		c.d.RemovePeer(k)
		c.reannounceLocked()
		return api.WGClient{}, priv, fmt.Errorf("clients: %w", err)
	}
	c.d.Log.Info("client added", "name", wc.Name, "address", wc.Address, "public_key", wc.PublicKey)
	c.d.Changed() // its flow-quota identity
	return wc, priv, nil
}

// remove removes a client and its peer.
func (c *Clients) remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.list, func(wc api.WGClient) bool { return wc.Name == name })
	if i < 0 {
		return fmt.Errorf("no client %q", name)
	}
	wc := c.list[i]
	c.list = slices.Delete(c.list, i, i+1)
	if err := c.saveLocked(); err != nil {
		c.list = slices.Insert(c.list, i, wc)
		return fmt.Errorf("clients: %w", err)
	}
	if k, err := crypto.ParsePublicKey(wc.PublicKey); err == nil {
		c.d.RemovePeer(k)
	}
	c.reannounceLocked() // after the peer is gone: a stale announcement only takes groups away
	c.d.Log.Info("client removed", "name", wc.Name, "address", wc.Address)
	c.d.Changed()
	return nil
}

// announce sets the clients tag to the addresses of list inside this host's current
// subnet (those of an old subnet are not routed here any more and are left out).
func (c *Clients) announce(list []api.WGClient) error {
	if c.d.SetTag == nil {
		return nil
	}
	sn := c.d.Subnet()
	addrs := make([]netip.Addr, 0, len(list))
	for _, wc := range list {
		addrs = append(addrs, wc.Address)
	}
	v := ""
	if len(addrs) > 0 && sn.Addr().Is4() && sn.Bits() == 24 {
		var err error
		if v, err = clienttag.Encode(sn, addrs); err != nil {
			return fmt.Errorf("announcing the clients' addresses: %w", err)
		}
	}
	if err := c.d.SetTag(clienttag.Key, v); err != nil {
		return fmt.Errorf("announcing the clients' addresses in gossip (without it the other hosts would judge them as this host): %w; free room in this host's gossip tags (fewer or shorter services) and retry", err)
	}
	return nil
}

// reannounceLocked announces c.list again; a failure is logged (the caller is undoing or
// removing, which an old announcement makes no less safe: it only judges more addresses
// as clients).
func (c *Clients) reannounceLocked() {
	if err := c.announce(c.list); err != nil {
		c.d.Log.Error("clients: announcing the clients' addresses", "err", err)
	}
}

// List returns the clients (a copy).
func (c *Clients) List() []api.WGClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

// Addr answers NAME.client.DOMAIN in DNS.
func (c *Clients) Addr(name string) (netip.Addr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, wc := range c.list {
		if wc.Name == strings.ToLower(name) {
			return wc.Address, true
		}
	}
	return netip.Addr{}, false
}

// dnsAddr is the overlay address this host serves DNS on at port 53, or invalid.
func (c *Clients) dnsAddr() netip.Addr {
	if c.d.DNSDisabled {
		return netip.Addr{}
	}
	for _, l := range c.d.DNSListen {
		if l == "overlay:53" {
			return c.d.Address()
		}
	}
	return netip.Addr{}
}

// validEndpoint accepts HOST:PORT with HOST an IP address or a DNS name and PORT 1-65535.
// The text goes verbatim into the client's wg-quick file, which wg-quick parses line by line
// and whose PostUp runs as root on the client: anything else (a newline, '=', '#', spaces)
// could smuggle in a line of its own.
func validEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("endpoint %q: want HOST:PORT, e.g. vpn.example.com:51820 or 192.0.2.1:51820", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("endpoint %q: port must be 1-65535", ep)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	ok := host != "" && len(host) <= 253
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("endpoint %q: host must be an IP address or a DNS name (letters, digits, '.' and '-')", ep)
	}
	return nil
}

// endpoint is the HOST:PORT a client dials: override, else the gossip advertise host, else
// a specific gossip bind host, at the data port.
func (c *Clients) endpoint(override string) (string, error) {
	if override != "" {
		if err := validEndpoint(override); err != nil {
			return "", err
		}
		return override, nil
	}
	for _, s := range []string{c.d.GossipAdvertise, c.d.GossipBind} {
		host, _, _ := config.SplitHostPort(s, 0)
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			continue
		}
		return net.JoinHostPort(host, strconv.Itoa(int(c.d.Port()))), nil
	}
	return "", errors.New("this host's public address is unknown (no gossip.advertise): pass --endpoint HOST:PORT")
}

func (c *Clients) wgQuick(wc api.WGClient, priv crypto.PrivateKey, endpoint string) WGQuickConfig {
	w := WGQuickConfig{Address: wc.Address, PrivateKey: api.PrivateKeyPlaceholder, DNS: c.dnsAddr(),
		DNSSearch: strings.TrimSuffix(c.d.DNSDomain, "."), PeerKey: c.d.HostKey.String(),
		Endpoint: endpoint, AllowedIPs: c.d.ClusterCIDR, Keepalive: wc.Keepalive.Duration, MTU: c.d.MTU}
	if priv != (crypto.PrivateKey{}) {
		w.PrivateKey = base64.StdEncoding.EncodeToString(priv[:])
	}
	return w
}
