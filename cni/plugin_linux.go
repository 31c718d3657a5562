package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Error codes of our own (the spec leaves 100 and up to plugins).
const (
	// ErrCodeExhausted: every address of the host's /24 is taken.
	ErrCodeExhausted uint = 100
	// ErrCodeContainersOff: the agent runs with container networking off.
	ErrCodeContainersOff uint = 101
)

// Funcs are the plugin's commands for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}
}

// VersionInfo: the spec versions this plugin speaks (1.0 and 1.1, and the older ones that
// libcni's result conversion covers).
var VersionInfo = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is the plugin's VERSION banner.
const About = "weft-cni: containers on the weft overlay"

// hostNetwork asks the agent and turns its failures into CNI errors that say what to do.
func hostNetwork(conf *NetConf) (HostNetwork, error) {
	hn, err := fetchHostNetwork(context.Background(), conf.Socket, conf.wait)
	if err != nil {
		if errors.Is(err, errNoAgent) {
			return hn, types.NewError(types.ErrTryAgainLater, "weft-cni: no weft agent answers on "+conf.Socket,
				"start the agent (weft agent, or its service), or set \"socket\" in the conflist to its control_socket: "+err.Error())
		}
		return hn, types.NewError(types.ErrTryAgainLater, "weft-cni: the weft agent has no subnet for this host", err.Error())
	}
	if !hn.Containers {
		return hn, types.NewError(ErrCodeContainersOff, "weft-cni: the weft agent has container networking off",
			"set cni.enabled: true in weft.yaml (or --cni) and restart the agent")
	}
	if conf.MTU != 0 && conf.MTU < hn.MTU {
		hn.MTU = conf.MTU
	}
	return hn, nil
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	var prev *current.Result
	if conf.RawPrevResult != nil {
		if prev, err = parsePrev(args.StdinData); err != nil {
			return err
		}
	}
	hn, err := hostNetwork(conf)
	if err != nil {
		return err
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("weft-cni: container namespace %q: %v", args.Netns, err), "")
	}
	defer netns.Close()
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "weft-cni: "+err.Error(), "check that "+conf.DataDir+" is writable (the plugin runs as root)")
	}
	// An interface of that name already there is left alone, and so is its reservation:
	// cleaning up after a failure below must not take a working one down. When it is this
	// attachment's own (a runtime retrying an ADD whose chained plugin failed, with no DEL in
	// between), the ADD answers what is there, so the retry can succeed.
	exists := false
	_ = netns.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName(args.IfName)
		exists = err == nil
		return nil
	})
	if exists {
		res, err := existing(conf, hn, store, netns, args.ContainerID, args.IfName)
		if err != nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("weft-cni: container %s already has an interface %s that is not this attachment's: %v", args.ContainerID, args.IfName, err),
				"DEL the container's network first, or use another interface name")
		}
		if prev != nil {
			res = merge(prev, res)
		}
		return types.PrintResult(res, conf.CNIVersion)
	}
	addr, err := store.Reserve(hn.Subnet, args.ContainerID, args.IfName, hn.Gateway, hn.Address)
	if errors.Is(err, ErrExhausted) {
		// Containers whose namespace went without a DEL reaching us left their addresses
		// reserved; their veths went with them.
		if n, rerr := store.ReclaimStale(hn.Subnet, linkAlive); rerr == nil && n > 0 {
			addr, err = store.Reserve(hn.Subnet, args.ContainerID, args.IfName, hn.Gateway, hn.Address)
		}
	}
	if errors.Is(err, ErrExhausted) {
		return types.NewError(ErrCodeExhausted, fmt.Sprintf("weft-cni: every address of %s is taken", hn.Subnet),
			"remove stopped containers (their DEL frees addresses), or run fewer containers on this host; stale reservations live in "+store.dir)
	}
	if err != nil {
		return ioError(err)
	}
	res, err := add(conf, hn, netns, args.IfName, addr)
	if err == nil {
		if err = store.SetLink(hn.Subnet, args.ContainerID, args.IfName, res.Interfaces[1].Name); err != nil {
			_ = netns.Do(func(ns.NetNS) error { return ip.DelLinkByName(args.IfName) })
		}
	}
	if err != nil {
		_ = store.Release(args.ContainerID, args.IfName)
		var te *types.Error
		if errors.As(err, &te) {
			return te
		}
		return types.NewError(types.ErrInternal, "weft-cni: "+err.Error(), "")
	}
	if prev != nil {
		res = merge(prev, res)
	}
	return types.PrintResult(res, conf.CNIVersion)
}

// add plumbs the container; on failure it removes what it made.
func add(conf *NetConf, hn HostNetwork, netns ns.NetNS, ifName string, addr netip.Addr) (*current.Result, error) {
	br, err := ensureBridge(conf.Bridge, hn.Gateway, hn.Subnet.Bits(), hn.MTU)
	if err != nil {
		return nil, err
	}
	host, cont, err := setupVeth(netns, br, ifName, hn.MTU)
	if err != nil {
		_ = netns.Do(func(ns.NetNS) error { return ip.DelLinkByName(ifName) })
		return nil, err
	}
	res := result(conf, hn, br, host, cont, netns.Path(), addr)
	if err := netns.Do(func(ns.NetNS) error { return ipam.ConfigureIface(ifName, res) }); err != nil {
		_ = netns.Do(func(ns.NetNS) error { return ip.DelLinkByName(ifName) })
		return nil, fmt.Errorf("configure %s: %w", ifName, err)
	}
	return res, nil
}

// linkAlive: a link of that name exists in this namespace (an error other than "not found"
// counts as alive: nothing is freed on a doubt).
func linkAlive(name string) bool {
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	return !errors.As(err, &nf)
}

// existing returns the ADD result of an attachment already in place: the container's
// interface is a veth holding the address reserved for (id, ifName), and its host end is on
// the bridge. Anything else is an error saying what differs.
func existing(conf *NetConf, hn HostNetwork, store *Store, netns ns.NetNS, id, ifName string) (*current.Result, error) {
	addr, ok, err := store.Lookup(hn.Subnet, id, ifName)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no address of %s is reserved for it", hn.Subnet)
	}
	var cont net.Interface
	var hostIdx int
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("it is a %s, not a veth", l.Type())
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		has := false
		for _, a := range as {
			if x, ok := netip.AddrFromSlice(a.IP.To4()); ok && x == addr {
				has = true
			}
		}
		if !has {
			return fmt.Errorf("it does not hold the reserved address %s", addr)
		}
		at := l.Attrs()
		cont = net.Interface{Index: at.Index, MTU: at.MTU, Name: at.Name, HardwareAddr: at.HardwareAddr}
		hostIdx = at.ParentIndex
		return nil
	})
	if err != nil {
		return nil, err
	}
	br, err := bridgeByName(conf.Bridge)
	if err != nil {
		return nil, err
	}
	hl, err := netlink.LinkByIndex(hostIdx)
	if err != nil || hl.Attrs().MasterIndex != br.Attrs().Index {
		return nil, fmt.Errorf("its host end is not on bridge %s", conf.Bridge)
	}
	at := hl.Attrs()
	host := net.Interface{Index: at.Index, MTU: at.MTU, Name: at.Name, HardwareAddr: at.HardwareAddr}
	return result(conf, hn, br, host, cont, netns.Path(), addr), nil
}

// result is the ADD result: the bridge, the host veth, the container's interface, its address
// with the gateway, and the two routes.
func result(conf *NetConf, hn HostNetwork, br *netlink.Bridge, host, cont net.Interface, sandbox string, addr netip.Addr) *current.Result {
	gw := net.IP(hn.Gateway.AsSlice())
	idx := 2
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Attrs().Name, Mac: br.Attrs().HardwareAddr.String()},
			{Name: host.Name, Mac: host.HardwareAddr.String()},
			{Name: cont.Name, Mac: cont.HardwareAddr.String(), Sandbox: sandbox, Mtu: hn.MTU},
		},
		IPs: []*current.IPConfig{{
			Interface: &idx,
			Address:   net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(hn.Subnet.Bits(), 32)},
			Gateway:   gw,
		}},
		Routes: []*types.Route{
			{Dst: prefixNet(hn.Network), GW: gw},
			{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw},
		},
	}
	if conf.DNS != nil {
		res.DNS = *conf.DNS
	}
	return res
}

// merge appends our result to a previous plugin's, renumbering our interface indices.
func merge(prev, ours *current.Result) *current.Result {
	off := len(prev.Interfaces)
	out := *prev
	out.CNIVersion = current.ImplementedSpecVersion
	out.Interfaces = append(append([]*current.Interface(nil), prev.Interfaces...), ours.Interfaces...)
	out.IPs = append([]*current.IPConfig(nil), prev.IPs...)
	for _, c := range ours.IPs {
		c := *c
		if c.Interface != nil {
			i := *c.Interface + off
			c.Interface = &i
		}
		out.IPs = append(out.IPs, &c)
	}
	out.Routes = append(append([]*types.Route(nil), prev.Routes...), ours.Routes...)
	if len(ours.DNS.Nameservers) > 0 || ours.DNS.Domain != "" {
		out.DNS = ours.DNS
	}
	return &out
}

func parsePrev(stdin []byte) (*current.Result, error) {
	conf := &types.NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "weft-cni: prevResult: "+err.Error(), "")
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "weft-cni: prevResult: "+err.Error(), "")
	}
	if conf.PrevResult == nil {
		return nil, nil
	}
	r, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "weft-cni: prevResult: "+err.Error(), "")
	}
	return r, nil
}

func cmdDel(args *skel.CmdArgs) error {
	_, store, err := openConfigStore(args.StdinData)
	if err != nil {
		return err
	}
	if err := store.Release(args.ContainerID, args.IfName); err != nil {
		return ioError(err)
	}
	// The runtime may call DEL after the namespace is gone (its veth went with it): fine.
	if args.Netns == "" {
		return nil
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		var nsErr ns.NSPathNotExistErr
		if errors.As(err, &nsErr) {
			return nil
		}
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("weft-cni: container namespace %q: %v", args.Netns, err), "")
	}
	defer netns.Close()
	err = netns.Do(func(ns.NetNS) error {
		err := ip.DelLinkByName(args.IfName)
		if errors.Is(err, ip.ErrLinkNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return types.NewError(types.ErrInternal, "weft-cni: remove "+args.IfName+": "+err.Error(), "")
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "weft-cni: CHECK needs prevResult", "the runtime passes the cached ADD result; re-run ADD")
	}
	prev, err := parsePrev(args.StdinData)
	if err != nil {
		return err
	}
	hn, err := hostNetwork(conf)
	if err != nil {
		return err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return ioError(err)
	}
	addr, ok, err := store.Lookup(hn.Subnet, args.ContainerID, args.IfName)
	if err != nil {
		return ioError(err)
	}
	if !ok {
		return checkError("no address is reserved for container %s %s in %s", args.ContainerID, args.IfName, hn.Subnet)
	}
	var ours []*current.IPConfig
	for _, c := range prev.IPs {
		if a, ok := netip.AddrFromSlice(c.Address.IP); ok && a.Unmap() == addr {
			ours = append(ours, c)
		}
	}
	if len(ours) == 0 {
		return checkError("the cached result does not hold the reserved address %s", addr)
	}
	if _, err := bridgeByName(conf.Bridge); err != nil {
		return checkError("bridge %s: %v", conf.Bridge, err)
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("weft-cni: container namespace %q: %v", args.Netns, err), "")
	}
	defer netns.Close()
	var hostIdx int
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("interface %s: %w", args.IfName, err)
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("interface %s is a %s, not a veth", args.IfName, l.Type())
		}
		if l.Attrs().MTU != hn.MTU {
			return fmt.Errorf("interface %s has MTU %d, the overlay's is %d", args.IfName, l.Attrs().MTU, hn.MTU)
		}
		hostIdx = l.Attrs().ParentIndex
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, ours); err != nil {
			return err
		}
		return ip.ValidateExpectedRoute(prev.Routes)
	})
	if err != nil {
		return checkError("%v", err)
	}
	hl, err := netlink.LinkByIndex(hostIdx)
	if err != nil {
		return checkError("the host end of %s (index %d) is gone: %v", args.IfName, hostIdx, err)
	}
	br, _ := bridgeByName(conf.Bridge)
	if br == nil || hl.Attrs().MasterIndex != br.Attrs().Index {
		return checkError("the host end %s is not on bridge %s", hl.Attrs().Name, conf.Bridge)
	}
	return nil
}

// ioError is the CNI error for a failure of the address store.
func ioError(err error) error {
	return types.NewError(types.ErrIOFailure, "weft-cni: "+err.Error(), "")
}

// openConfigStore parses the network configuration and opens its address store.
func openConfigStore(stdin []byte) (*NetConf, *Store, error) {
	conf, err := ParseConfig(stdin)
	if err != nil {
		return nil, nil, err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return nil, nil, ioError(err)
	}
	return conf, store, nil
}

func checkError(format string, args ...any) error {
	return types.NewError(types.ErrInternal, "weft-cni: CHECK failed: "+fmt.Sprintf(format, args...),
		"delete and re-create the container's network (DEL, then ADD)")
}

// cmdGC frees reservations of attachments the runtime no longer knows (CNI 1.1).
func cmdGC(args *skel.CmdArgs) error {
	conf, store, err := openConfigStore(args.StdinData)
	if err != nil {
		return err
	}
	keep := make(map[string]bool, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		keep[OwnerKey(a.ContainerID, a.IfName)] = true
	}
	if err := store.ReleaseExcept(keep); err != nil {
		return ioError(err)
	}
	return nil
}

// cmdStatus: ready when the agent answers with a subnet and container networking on.
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	conf.wait = 0
	if _, err := hostNetwork(conf); err != nil {
		var te *types.Error
		if errors.As(err, &te) {
			return types.NewError(types.ErrPluginNotAvailable, te.Msg, te.Details)
		}
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	return nil
}

func prefixNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
