package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
)

// L2 mode: a TAP device and a forwarding database. Encrypted (l2Path), the common loop
// carries Ethernet frames (VXLAN-GPE next protocol 0x03) and an l2.Router replaces LPM
// routing; plaintext (plainPath), an l2.PlainVTEP speaks RFC 7348 VXLAN that the Linux
// kernel's vxlan interoperates with. Every peer of the VNI is a flood remote; the MAC each
// host publishes in gossip is a static FDB entry.

// openTAP opens the TAP with this host's MAC and gives it the overlay address: with
// offloads unless tap_offload is false or the kernel refuses them (tap.OpenBest), which is
// logged once and shown by `weft status`. Its IPv6
// link-local address is the EUI-64 of the MAC (addr_gen_mode 0, before the link goes up):
// that is the only IPv6 source encrypted L2 accepts from a peer outside its allowed
// prefixes (l2/cryptokey.go), so stable-privacy addresses from a distribution's default
// would be dropped at the peers.
func openTAP(cfg Config, deps Deps, mac l2.MAC) (tun.Device, error) {
	dev, mode, err := deps.OpenTAP(tap.Config{Name: cfg.Interface, MTU: cfg.MTU, MAC: mac}, cfg.TAPOffload)
	if err != nil {
		return nil, fmt.Errorf("create TAP %s: %w (is /dev/net/tun present and are you root?)", cfg.Interface, err)
	}
	log := deps.Logger
	switch {
	case mode.Fallback():
		log.Warn("TAP offload refused by the kernel: frames are read and written one by one (slower)",
			"interface", cfg.Interface, "reason", mode.Reason)
	case !mode.Offload:
		mode.Reason = "tap_offload false"
		log.Info("TAP without offload: frames are read and written one by one", "interface", cfg.Interface, "reason", mode.Reason)
	}
	deps.TAPOpened(mode)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+cfg.Interface+"/addr_gen_mode", []byte("0"), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("IPv6 link-local address may not be the EUI-64 of the TAP MAC; peers drop other link-local sources",
			"interface", cfg.Interface, "err", err)
	}
	addr, bits := deps.Address()
	if err := deps.ConfigureLink(cfg.Interface, addr, bits, cfg.MTU); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// tableLookup is the l2.Router's SourceLookup: the agent's peer table, which the agent makes
// after New made the router and before the router sees a frame.
type tableLookup struct{ table func() *peers.Table }

func (t tableLookup) Lookup(addr netip.Addr) *peers.Peer { return t.table().Lookup(addr) }

// l2Path is encrypted L2: a TAP, the encrypted loop over Ethernet frames, an FDB to route.
type l2Path struct {
	encrypted
	router *l2.Router // from New on, so gossip may seed it before Start
}

var _ Datapath = (*l2Path)(nil)

func (d *l2Path) Start() (uint16, error) {
	mac := d.deps.TAPMAC(d.deps.PublicKey)
	dev, err := openTAP(d.cfg, d.deps, mac)
	if err != nil {
		return 0, err
	}
	d.router.FDB().SetStatic(mac, nil) // nobody else may speak for this host's MAC
	return d.startTunnel(dev, d.cfg.MTU+config.EthernetHeader, d.router)
}

// AddStatic makes a static peer a flood remote of the VNI and pins its TAP MAC (derived from
// its key) to it. Its allowed_ips are the inner sources it may use.
func (d *l2Path) AddStatic(p config.PeerConfig) error {
	peer, err := d.upsertStatic(p, false)
	if err != nil {
		return err
	}
	if peer != nil {
		d.router.FDB().AddRemote(peer)
		d.router.FDB().SetStatic(d.deps.TAPMAC(peer.Key()), peer)
	}
	return nil
}

// AddMember makes a member's peer a flood remote of the VNI with its subnet as allowed
// prefix (the inner sources and ARP senders it may use) and seeds the MAC it publishes.
func (d *l2Path) AddMember(m Member, subnet netip.Prefix) error {
	p, err := d.upsertMember(m, []netip.Prefix{subnet})
	if p != nil {
		d.router.FDB().AddRemote(p)
		if !m.MAC.IsZero() {
			d.router.FDB().SetStatic(m.MAC, p)
		}
	}
	return err
}

// RemoveMember withdraws a peer from the FDB before it leaves the table: FDB.RemoveRemote
// forgets every MAC behind it, static or learned.
func (d *l2Path) RemoveMember(m Member) {
	table := d.deps.Table()
	if p := table.ByKey(m.Key); p != nil {
		d.router.FDB().RemoveRemote(p)
	}
	table.Remove(m.Key)
}

func (d *l2Path) FDB(nameOf func(crypto.PublicKey) string) []api.FDBEntry {
	var out []api.FDBEntry
	for _, e := range d.router.FDB().Entries() {
		r := "local"
		if e.Remote != nil {
			r = e.Remote.Key().String()
			if n := nameOf(e.Remote.Key()); n != "" {
				r = n
			}
		}
		out = append(out, api.FDBEntry{MAC: e.MAC.String(), Remote: r, Static: e.Static, Age: fdbAge(e.Age)})
	}
	return out
}

// plainPath is plain L2 (encryption: none): a TAP and the RFC 7348 VTEP. It has no peer
// table: static peers' endpoints and gossip members are the VTEP's remotes.
type plainPath struct {
	cfg  Config
	deps Deps
	vtep *l2.PlainVTEP
}

var _ Datapath = (*plainPath)(nil)

func (d *plainPath) Start() (uint16, error) {
	dev, err := openTAP(d.cfg, d.deps, d.deps.TAPMAC(d.deps.PublicKey))
	if err != nil {
		return 0, err
	}
	pc := l2.DefaultPlainConfig()
	pc.VNI = d.cfg.VNI
	pc.Port = uint16(d.cfg.ListenPort)
	pc.Logger = d.deps.Logger
	pc.FDB.ARPSuppression = d.cfg.ARPSuppression
	pc.LearnUnknownVTEPs = d.cfg.LearnUnknownVTEPs
	for _, p := range d.cfg.Peers {
		if p.Endpoint.IsValid() {
			pc.Remotes = append(pc.Remotes, p.Endpoint.AddrPort)
		}
	}
	v, err := l2.NewPlainVTEP(pc, dev)
	if err != nil {
		dev.Close()
		return 0, fmt.Errorf("plain VXLAN on UDP %d: %w", pc.Port, err)
	}
	v.Start()
	d.vtep = v
	return v.LocalAddr().Port(), nil
}

func (d *plainPath) Close() { _ = d.vtep.Close() }

// AddStatic: the static peers' endpoints are the VTEP's remotes from the start.
func (d *plainPath) AddStatic(config.PeerConfig) error { return nil }

// AddMember adds a plaintext VTEP remote learned by gossip: a flood remote, a static FDB
// entry for its published MAC, and the IP→MAC pair that ARP suppression answers from.
func (d *plainPath) AddMember(m Member, _ netip.Prefix) error {
	if !m.Endpoint.IsValid() {
		return nil
	}
	fdb := d.vtep.ForwardingDB()
	d.vtep.AddRemote(m.Endpoint)
	if !m.MAC.IsZero() {
		fdb.SetStatic(m.MAC, m.Endpoint)
		if m.Addr.IsValid() {
			fdb.SetNeighbor(m.Addr, m.MAC)
		}
	}
	return nil
}

func (d *plainPath) RemoveMember(m Member) {
	if !m.Endpoint.IsValid() {
		return
	}
	if m.Addr.IsValid() {
		d.vtep.ForwardingDB().RemoveNeighbor(m.Addr)
	}
	d.vtep.RemoveRemote(m.Endpoint) // also forgets every MAC behind it
}

func (d *plainPath) Stats() (map[string]uint64, map[string]uint64) {
	ps := d.vtep.Stats()
	return ps.Drops, map[string]uint64{"tx_frames": ps.TxFrames, "rx_frames": ps.RxPackets,
		"arp_suppressed": ps.ARPSuppressed, "fdb_entries": uint64(ps.FDB.Entries), "flooded": ps.FDB.Flooded}
}

func (d *plainPath) FDB(func(crypto.PublicKey) string) []api.FDBEntry {
	var out []api.FDBEntry
	for _, e := range d.vtep.FDB() {
		out = append(out, api.FDBEntry{MAC: e.MAC.String(), Remote: e.Remote.String(), Static: e.Static, Age: fdbAge(e.Age)})
	}
	return out
}

func fdbAge(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.Round(time.Second).String()
}
