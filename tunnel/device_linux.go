package tunnel

import (
	"fmt"

	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN opens (creating if needed) the Linux TUN device name with the given MTU,
// through wireguard-go's tun package: IFF_VNET_HDR with TSO/USO offloads, so one Read may
// return a GSO super-packet split into up to BatchSize segments and Write coalesces
// (GRO). The tunnel takes ownership when the device is passed to New.
func CreateTUN(name string, mtu int) (tun.Device, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN %q (needs CAP_NET_ADMIN and /dev/net/tun): %w", name, err)
	}
	return dev, nil
}
