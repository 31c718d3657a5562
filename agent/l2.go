package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sort"
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

// tapMAC derives this host's TAP MAC from its public key: stable across restarts without
// state, locally administered (0x02) and unicast.
func (a *Agent) tapMAC() l2.MAC { return tapMACOf(a.priv.Public()) }

// openTAP opens the TAP with this host's MAC and gives it the overlay address: with
// offloads unless tap_offload is false or the kernel refuses them (tap.OpenBest), which is
// logged once and shown by `weft status`. Its IPv6
// link-local address is the EUI-64 of the MAC (addr_gen_mode 0, before the link goes up):
// that is the only IPv6 source encrypted L2 accepts from a peer outside its allowed
// prefixes (l2/cryptokey.go), so stable-privacy addresses from a distribution's default
// would be dropped at the peers.
func (a *Agent) openTAP(mac l2.MAC) (tun.Device, error) {
	dev, mode, err := tap.OpenBest(tap.Config{Name: a.cfg.Interface, MTU: a.cfg.MTU, MAC: mac}, a.cfg.TapOffload)
	if err != nil {
		return nil, fmt.Errorf("create TAP %s: %w (is /dev/net/tun present and are you root?)", a.cfg.Interface, err)
	}
	switch {
	case mode.Fallback():
		a.log.Warn("TAP offload refused by the kernel: frames are read and written one by one (slower)",
			"interface", a.cfg.Interface, "reason", mode.Reason)
	case !mode.Offload:
		mode.Reason = "tap_offload false"
		a.log.Info("TAP without offload: frames are read and written one by one", "interface", a.cfg.Interface, "reason", mode.Reason)
	}
	a.tapMode.Store(&mode)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+a.cfg.Interface+"/addr_gen_mode", []byte("0"), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Warn("IPv6 link-local address may not be the EUI-64 of the TAP MAC; peers drop other link-local sources",
			"interface", a.cfg.Interface, "err", err)
	}
	if err := configureLink(a.cfg.Interface, a.address, a.linkBits(), a.cfg.MTU); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// peerTable is the l2.Router's SourceLookup: the agent's peer table, which Run makes after
// newDatapath made the router and before the router sees a frame.
type peerTable struct{ a *Agent }

func (t peerTable) Lookup(addr netip.Addr) *peers.Peer { return t.a.table.Lookup(addr) }

// l2Path is encrypted L2: a TAP, the encrypted loop over Ethernet frames, an FDB to route.
type l2Path struct {
	encrypted
	router *l2.Router // from newDatapath on, so gossip may seed it before start
}

var _ datapath = (*l2Path)(nil)

func (d *l2Path) start() (uint16, error) {
	mac := d.a.tapMAC()
	dev, err := d.a.openTAP(mac)
	if err != nil {
		return 0, err
	}
	d.router.FDB().SetStatic(mac, nil) // nobody else may speak for this host's MAC
	return d.startTunnel(dev, d.a.cfg.MTU+config.EthernetHeader, d.router)
}

// addStatic makes a static peer a flood remote of the VNI and pins its TAP MAC (derived from
// its key) to it. Its allowed_ips are the inner sources it may use.
func (d *l2Path) addStatic(p config.PeerConfig) error {
	peer, err := d.upsertStatic(p, false)
	if err != nil {
		return err
	}
	if peer != nil {
		d.router.FDB().AddRemote(peer)
		d.router.FDB().SetStatic(tapMACOf(peer.Key()), peer)
	}
	return nil
}

// addMember makes a member's peer a flood remote of the VNI with its subnet as allowed
// prefix (the inner sources and ARP senders it may use) and seeds the MAC it publishes.
func (d *l2Path) addMember(mp memberPeer, subnet netip.Prefix) error {
	p, err := d.upsertMember(mp, []netip.Prefix{subnet})
	if p != nil {
		d.router.FDB().AddRemote(p)
		if !mp.mac.IsZero() {
			d.router.FDB().SetStatic(mp.mac, p)
		}
	}
	return err
}

// removeMember withdraws a peer from the FDB before it leaves the table: FDB.RemoveRemote
// forgets every MAC behind it, static or learned.
func (d *l2Path) removeMember(mp memberPeer) {
	if p := d.a.table.ByKey(mp.key); p != nil {
		d.router.FDB().RemoveRemote(p)
	}
	d.a.table.Remove(mp.key)
}

func (d *l2Path) fdb(nameOf func(crypto.PublicKey) string) []api.FDBEntry {
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
	a    *Agent
	vtep *l2.PlainVTEP
}

var _ datapath = (*plainPath)(nil)

func (d *plainPath) start() (uint16, error) {
	a := d.a
	dev, err := a.openTAP(a.tapMAC())
	if err != nil {
		return 0, err
	}
	pc := l2.DefaultPlainConfig()
	pc.VNI = a.cfg.VNI
	pc.Port = uint16(a.cfg.ListenPort)
	pc.Logger = a.log
	pc.FDB.ARPSuppression = a.cfg.ARPSuppression
	pc.LearnUnknownVTEPs = a.cfg.Plain.LearnUnknownVTEPs
	for _, p := range a.cfg.Peers {
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

func (d *plainPath) close() { _ = d.vtep.Close() }

// addStatic: the static peers' endpoints are the VTEP's remotes from the start.
func (d *plainPath) addStatic(config.PeerConfig) error { return nil }

// addMember adds a plaintext VTEP remote learned by gossip: a flood remote, a static FDB
// entry for its published MAC, and the IP→MAC pair that ARP suppression answers from.
func (d *plainPath) addMember(mp memberPeer, _ netip.Prefix) error {
	if !mp.ep.IsValid() {
		return nil
	}
	fdb := d.vtep.ForwardingDB()
	d.vtep.AddRemote(mp.ep)
	if !mp.mac.IsZero() {
		fdb.SetStatic(mp.mac, mp.ep)
		if mp.addr.IsValid() {
			fdb.SetNeighbor(mp.addr, mp.mac)
		}
	}
	return nil
}

func (d *plainPath) removeMember(mp memberPeer) {
	if !mp.ep.IsValid() {
		return
	}
	if mp.addr.IsValid() {
		d.vtep.ForwardingDB().RemoveNeighbor(mp.addr)
	}
	d.vtep.RemoveRemote(mp.ep) // also forgets every MAC behind it
}

func (d *plainPath) stats() (map[string]uint64, map[string]uint64) {
	ps := d.vtep.Stats()
	return ps.Drops, map[string]uint64{"tx_frames": ps.TxFrames, "rx_frames": ps.RxPackets,
		"arp_suppressed": ps.ARPSuppressed, "fdb_entries": uint64(ps.FDB.Entries), "flooded": ps.FDB.Flooded}
}

func (d *plainPath) fdb(func(crypto.PublicKey) string) []api.FDBEntry {
	var out []api.FDBEntry
	for _, e := range d.vtep.FDB() {
		out = append(out, api.FDBEntry{MAC: e.MAC.String(), Remote: e.Remote.String(), Static: e.Static, Age: fdbAge(e.Age)})
	}
	return out
}

// FDB lists the forwarding database (empty in L3 mode).
func (a *Agent) FDB() []api.FDBEntry {
	nameOf := func(crypto.PublicKey) string { return "" }
	if a.gsp != nil {
		nameOf = a.gsp.nameOf
	}
	out := append([]api.FDBEntry{}, a.dp.fdb(nameOf)...)
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out
}

func fdbAge(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.Round(time.Second).String()
}
