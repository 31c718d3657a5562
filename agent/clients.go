package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
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

var clientNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// clientStore is the agent's clients, persisted in StateDir/clients.json.
type clientStore struct {
	mu      sync.Mutex
	loaded  bool
	list    []api.WGClient
	forward bool            // forwarding is on for the TUN
	rules   []*netlink.Rule // the client guard (clients_linux.go)
	// enableForwarding installs the guard and turns forwarding on for the TUN; nil:
	// Agent.clientForwarding (tests without a device replace it).
	enableForwarding func() error
}

func (a *Agent) clientsPath() string { return filepath.Join(a.cfg.StateDir, "clients.json") }

// clientsSupported says why clients cannot work in this mode, or nil.
func (a *Agent) clientsSupported() error {
	switch {
	case a.cfg.Mode != "l3":
		return errors.New("stock WireGuard clients need mode l3 (they carry IP packets, not Ethernet frames)")
	case a.cfg.Encryption != "wireguard":
		return errors.New("stock WireGuard clients need encryption: wireguard")
	case a.cfg.Netstack:
		return errors.New("stock WireGuard clients need the TUN datapath (the host forwards for them); not with --netstack")
	case a.cfg.CNI.Enabled:
		// The bridge's /24 route would take the clients' replies off the TUN, and the
		// containers' address store does not know the clients' addresses.
		return errors.New("stock WireGuard clients and containers (cni.enabled) share this host's /24 and cannot both run yet; use clients on a host without containers")
	}
	return nil
}

// startClients loads the stored clients and adds them as peers (after the datapath).
func (a *Agent) startClients() error {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	b, err := os.ReadFile(a.clientsPath())
	if errors.Is(err, os.ErrNotExist) {
		a.cl.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("clients: %w", err)
	}
	var list []api.WGClient
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("clients: %s: %w", a.clientsPath(), err)
	}
	a.cl.loaded = true
	if len(list) == 0 {
		return nil
	}
	if err := a.clientsSupported(); err != nil {
		return fmt.Errorf("clients: %s holds %d clients: %w", a.clientsPath(), len(list), err)
	}
	for _, c := range list {
		if err := a.addClientPeerLocked(c); err != nil {
			return fmt.Errorf("client %s: %w", c.Name, err)
		}
	}
	a.cl.list = list
	return nil
}

func (a *Agent) addClientPeerLocked(c api.WGClient) error {
	key, err := crypto.ParsePublicKey(c.PublicKey)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	if !a.cl.forward {
		enable := a.cl.enableForwarding
		if enable == nil {
			enable = a.clientForwarding
		}
		if err := enable(); err != nil {
			return err
		}
		a.cl.forward = true
	}
	_, err = a.table.Upsert(peers.PeerConfig{PublicKey: key, WireGuardFraming: true, PersistentKeepalive: c.Keepalive.Duration,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(c.Address, 32)}})
	if err != nil && !errors.Is(err, peers.ErrPrefixMoved) {
		return err
	}
	return nil
}

func (a *Agent) saveClientsLocked() error {
	b, err := json.MarshalIndent(a.cl.list, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(a.clientsPath(), append(b, '\n'), 0o600)
}

// clientRange returns the first and last address clients may get.
func (a *Agent) clientRange() (netip.Addr, netip.Addr, error) {
	a.mu.Lock()
	sn := a.subnet
	a.mu.Unlock()
	if !sn.IsValid() || !sn.Addr().Is4() || sn.Bits() != 24 {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("this host has no IPv4 /24 subnet (%v) to give clients addresses from", sn)
	}
	base := sn.Addr().As4()
	first, last := base, base
	first[3], last[3] = 200, 254
	lo, hi := netip.AddrFrom4(first), netip.AddrFrom4(last)
	if r := a.cfg.Clients.Range; r != "" {
		var err error
		if lo, hi, err = parseClientRange(r); err != nil {
			return lo, hi, err
		}
		if !sn.Contains(lo) || !sn.Contains(hi) {
			return lo, hi, fmt.Errorf("clients.range %s: must lie inside this host's subnet %s (the other hosts route it here; a range outside it would need its own gossip claim, which weft does not make yet)", r, sn)
		}
	}
	return lo, hi, nil
}

func parseClientRange(r string) (netip.Addr, netip.Addr, error) {
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

// usableClientAddr: not the host's own address, not the /24's network or broadcast.
func (a *Agent) usableClientAddr(ip netip.Addr) bool {
	b := ip.As4()
	return ip != a.address && b[3] != 0 && b[3] != 255
}

// addClient allocates, stores and adds a client; it returns the record and the private
// key (zero when the caller gave the public key).
func (a *Agent) addClient(req api.ClientAdd) (api.WGClient, crypto.PrivateKey, error) {
	var priv crypto.PrivateKey
	if err := a.clientsSupported(); err != nil {
		return api.WGClient{}, priv, err
	}
	if !clientNameRE.MatchString(req.Name) {
		return api.WGClient{}, priv, fmt.Errorf("client name %q: lower-case letters, digits and inner dashes, at most 63 (it becomes NAME.client.%s)", req.Name, a.cfg.DNS.Domain)
	}
	c := api.WGClient{Name: req.Name, Keepalive: req.Keepalive, Created: time.Now().UTC().Truncate(time.Second)}
	if req.PublicKey != "" {
		k, err := crypto.ParsePublicKey(req.PublicKey)
		if err != nil {
			return api.WGClient{}, priv, fmt.Errorf("public key: %w", err)
		}
		c.PublicKey = k.String()
	} else {
		var err error
		if priv, err = crypto.GeneratePrivateKey(); err != nil {
			return api.WGClient{}, priv, err
		}
		c.PublicKey = priv.Public().String()
	}
	if c.PublicKey == a.priv.Public().String() {
		return api.WGClient{}, priv, errors.New("public key is this host's own")
	}
	lo, hi, err := a.clientRange()
	if err != nil {
		return api.WGClient{}, priv, err
	}
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	if !a.cl.loaded {
		return api.WGClient{}, priv, errors.New("the agent is still starting")
	}
	used := map[netip.Addr]bool{}
	for _, o := range a.cl.list {
		if o.Name == c.Name {
			return api.WGClient{}, priv, fmt.Errorf("client %s exists (weft client remove %s first)", c.Name, c.Name)
		}
		if o.PublicKey == c.PublicKey {
			return api.WGClient{}, priv, fmt.Errorf("public key is client %s's already", o.Name)
		}
		used[o.Address] = true
	}
	if k, _ := crypto.ParsePublicKey(c.PublicKey); a.table.ByKey(k) != nil {
		return api.WGClient{}, priv, errors.New("public key belongs to a peer of this host already")
	}
	if req.Address.IsValid() {
		ip := req.Address.Unmap()
		a.mu.Lock()
		sn := a.subnet
		a.mu.Unlock()
		switch {
		case !ip.Is4() || !sn.Contains(ip):
			return api.WGClient{}, priv, fmt.Errorf("address %s: must be an IPv4 address of this host's subnet %s", ip, sn)
		case !a.usableClientAddr(ip):
			return api.WGClient{}, priv, fmt.Errorf("address %s: the host's own, or the subnet's network or broadcast address", ip)
		case used[ip]:
			return api.WGClient{}, priv, fmt.Errorf("address %s is taken by another client", ip)
		}
		c.Address = ip
	} else {
		for ip := lo; ip.IsValid() && !hi.Less(ip); ip = ip.Next() {
			if !used[ip] && a.usableClientAddr(ip) {
				c.Address = ip
				break
			}
		}
		if !c.Address.IsValid() {
			return api.WGClient{}, priv, fmt.Errorf("no free client address in %s-%s (remove a client or set clients.range)", lo, hi)
		}
	}
	if err := a.addClientPeerLocked(c); err != nil {
		return api.WGClient{}, priv, err
	}
	a.cl.list = append(a.cl.list, c)
	if err := a.saveClientsLocked(); err != nil {
		a.cl.list = a.cl.list[:len(a.cl.list)-1]
		k, _ := crypto.ParsePublicKey(c.PublicKey)
		a.table.Remove(k)
		return api.WGClient{}, priv, fmt.Errorf("clients: %w", err)
	}
	a.log.Info("client added", "name", c.Name, "address", c.Address, "public_key", c.PublicKey)
	if a.pol != nil {
		a.pol.kickRebuild() // its flow-quota identity
	}
	return c, priv, nil
}

// removeClient removes a client and its peer.
func (a *Agent) removeClient(name string) error {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	i := slices.IndexFunc(a.cl.list, func(c api.WGClient) bool { return c.Name == name })
	if i < 0 {
		return fmt.Errorf("no client %q", name)
	}
	c := a.cl.list[i]
	a.cl.list = slices.Delete(a.cl.list, i, i+1)
	if err := a.saveClientsLocked(); err != nil {
		a.cl.list = slices.Insert(a.cl.list, i, c)
		return fmt.Errorf("clients: %w", err)
	}
	if k, err := crypto.ParsePublicKey(c.PublicKey); err == nil {
		a.table.Remove(k)
	}
	a.log.Info("client removed", "name", c.Name, "address", c.Address)
	if a.pol != nil {
		a.pol.kickRebuild()
	}
	return nil
}

func (a *Agent) clients() []api.WGClient {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	return slices.Clone(a.cl.list)
}

// clientAddr answers NAME.client.DOMAIN in DNS.
func (a *Agent) clientAddr(name string) (netip.Addr, bool) {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	for _, c := range a.cl.list {
		if c.Name == strings.ToLower(name) {
			return c.Address, true
		}
	}
	return netip.Addr{}, false
}

// dnsAddr is the overlay address this host serves DNS on at port 53, or invalid.
func (a *Agent) dnsAddr() netip.Addr {
	if a.cfg.DNS.Disabled {
		return netip.Addr{}
	}
	for _, l := range a.cfg.DNS.Listen {
		if l == "overlay:53" {
			return a.address
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

// clientEndpoint is the HOST:PORT a client dials: override, else the gossip advertise
// host, else a specific gossip bind host, at the data port.
func (a *Agent) clientEndpoint(override string) (string, error) {
	if override != "" {
		if err := validEndpoint(override); err != nil {
			return "", err
		}
		return override, nil
	}
	for _, s := range []string{a.cfg.Gossip.Advertise, a.cfg.Gossip.Bind} {
		host, _, _ := config.SplitHostPort(s, 0)
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			continue
		}
		return net.JoinHostPort(host, strconv.Itoa(int(a.port))), nil
	}
	return "", errors.New("this host's public address is unknown (no gossip.advertise): pass --endpoint HOST:PORT")
}

// WGQuickConfig is the wg-quick text for a client.
type WGQuickConfig struct {
	Address    netip.Addr
	PrivateKey string // base64, or PrivateKeyPlaceholder
	DNS        netip.Addr
	DNSSearch  string // the overlay's DNS domain, without the final dot
	PeerKey    string
	Endpoint   string
	AllowedIPs netip.Prefix
	Keepalive  time.Duration
	MTU        int // the host's overlay MTU (0: omitted)
}

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

func (a *Agent) clientConfig(c api.WGClient, priv crypto.PrivateKey, endpoint string) WGQuickConfig {
	w := WGQuickConfig{Address: c.Address, PrivateKey: api.PrivateKeyPlaceholder, DNS: a.dnsAddr(),
		DNSSearch: strings.TrimSuffix(a.cfg.DNS.Domain, "."), PeerKey: a.priv.Public().String(),
		Endpoint: endpoint, AllowedIPs: a.cfg.ClusterCIDR.Prefix, Keepalive: c.Keepalive.Duration, MTU: a.cfg.MTU}
	if priv != (crypto.PrivateKey{}) {
		w.PrivateKey = base64.StdEncoding.EncodeToString(priv[:])
	}
	return w
}

func (a *Agent) clientRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, a.clients()) })
	mux.HandleFunc("POST /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		var req api.ClientAdd
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad client request: %w", err))
			return
		}
		if !a.dpUp.Load() {
			writeError(w, http.StatusServiceUnavailable, errors.New("the datapath is not up yet"))
			return
		}
		ep, err := a.clientEndpoint(req.Endpoint)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		c, priv, err := a.addClient(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, api.ClientAdded{Client: c, Config: a.clientConfig(c, priv, ep).String()})
	})
	mux.HandleFunc("DELETE /v1/clients/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.removeClient(r.PathValue("name")); err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
}
