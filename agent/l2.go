package agent

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"time"

	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
)

// L2 mode: a TAP device and a forwarding database. Encrypted, the common loop carries
// Ethernet frames (VXLAN-GPE next protocol 0x03) and an L2Router replaces LPM routing;
// plaintext, a PlainVTEP speaks RFC 7348 VXLAN that the Linux kernel's vxlan interoperates
// with. Every peer of the VNI is a flood remote; the MAC each host publishes in gossip is a
// static FDB entry.

// tapMAC derives this host's TAP MAC from its public key: stable across restarts without
// state, locally administered (0x02) and unicast.
func (a *Agent) tapMAC() l2.MAC {
	sum := sha256.Sum256(append([]byte("weft tap mac "), a.priv.Public().String()...))
	var m l2.MAC
	copy(m[:], sum[:6])
	m[0] = m[0]&0xfc | 0x02
	return m
}

func (a *Agent) startL2() error {
	mac := a.tapMAC()
	tap, err := tap.Open(tap.Config{Name: a.cfg.Interface, MTU: a.cfg.MTU, MAC: mac})
	if err != nil {
		return fmt.Errorf("create TAP %s: %w (is /dev/net/tun present and are you root?)", a.cfg.Interface, err)
	}
	if err := configureLink(a.cfg.Interface, a.address, a.linkBits(), a.cfg.MTU); err != nil {
		tap.Close()
		return err
	}
	if a.cfg.Encryption == "none" {
		pc := l2.DefaultPlainConfig()
		pc.VNI = a.cfg.VNI
		pc.Port = uint16(a.cfg.ListenPort)
		pc.Logger = a.log
		pc.FDB.ARPSuppression = a.cfg.ARPSuppression
		for _, p := range a.cfg.Peers {
			if p.Endpoint.IsValid() {
				pc.Remotes = append(pc.Remotes, p.Endpoint.AddrPort)
			}
		}
		v, err := l2.NewPlainVTEP(pc, tap)
		if err != nil {
			tap.Close()
			return fmt.Errorf("plain VXLAN on UDP %d: %w", pc.Port, err)
		}
		v.Start()
		a.plain = v
		a.port = v.LocalAddr().Port()
		return nil
	}
	router := l2.NewRouter(a.cfg.VNI, l2.DefaultFDBConfig())
	router.FDB().SetStatic(mac, nil) // nobody else may speak for this host's MAC
	a.l2 = router
	return a.runTunnel(tap, a.cfg.MTU+ethernetHdr, router)
}

// peerAdded makes a new or updated peer a flood remote of the VNI (L2) and seeds its MAC.
func (a *Agent) peerAdded(p *peers.Peer, mac l2.MAC) {
	if a.l2 != nil && p != nil {
		a.l2.FDB().AddRemote(p)
		if !mac.IsZero() {
			a.l2.FDB().SetStatic(mac, p)
		}
	}
}

// peerRemoving withdraws a peer from the FDB before it leaves the table: FDB.RemoveRemote
// forgets every MAC behind it, static or learned.
func (a *Agent) peerRemoving(p *peers.Peer) {
	if a.l2 != nil && p != nil {
		a.l2.FDB().RemoveRemote(p)
	}
}

// plainRemote adds or removes a plaintext VTEP remote learned by gossip (encryption: none):
// a flood remote, a static FDB entry for its published MAC, and the IP→MAC pair that ARP
// suppression answers from.
func (a *Agent) plainRemote(mp memberPeer, add bool) {
	if a.plain == nil || !mp.ep.IsValid() {
		return
	}
	fdb := a.plain.ForwardingDB()
	if add {
		a.plain.AddRemote(mp.ep)
		if !mp.mac.IsZero() {
			fdb.SetStatic(mp.mac, mp.ep)
			if mp.addr.IsValid() {
				fdb.SetNeighbor(mp.addr, mp.mac)
			}
		}
		return
	}
	if mp.addr.IsValid() {
		fdb.RemoveNeighbor(mp.addr)
	}
	a.plain.RemoveRemote(mp.ep) // also forgets every MAC behind it
}

// FDBEntry is one row of GET /v1/fdb.
type FDBEntry struct {
	MAC    string `json:"mac"`
	Remote string `json:"remote"` // peer name or key (encrypted), VTEP address (plain), "local"
	Static bool   `json:"static"`
	Age    string `json:"age,omitempty"`
}

// FDB lists the forwarding database (empty in L3 mode).
func (a *Agent) FDB() []FDBEntry {
	out := []FDBEntry{}
	age := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.Round(time.Second).String()
	}
	switch {
	case a.l2 != nil:
		for _, e := range a.l2.FDB().Entries() {
			r := "local"
			if e.Remote != nil {
				r = e.Remote.Key().String()
				if a.gsp != nil {
					if n := a.gsp.nameOf(e.Remote.Key()); n != "" {
						r = n
					}
				}
			}
			out = append(out, FDBEntry{MAC: e.MAC.String(), Remote: r, Static: e.Static, Age: age(e.Age)})
		}
	case a.plain != nil:
		for _, e := range a.plain.FDB() {
			out = append(out, FDBEntry{MAC: e.MAC.String(), Remote: e.Remote.String(), Static: e.Static, Age: age(e.Age)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	return out
}
