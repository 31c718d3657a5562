package tunnel

import (
	"fmt"
	"os"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/tap"
)

// TUNDeviceEnv, set to "wireguard-go", makes CreateTUN open wireguard-go's TUN even where
// weft's own would run: the reference, for side-by-side measurements and tests.
const TUNDeviceEnv = "WEFT_TUN_DEVICE"

// CreateTUN opens the Linux TUN device name with the given MTU and says which device it is.
//
// weft's own (tap.OpenTUN, the TAP code in TUN mode): a virtio-net header with TSO and
// checksum offload, so one Read returns a TCP super-packet cut into up to 64 segments, and
// Write merges consecutive segments of a flow into one super-packet without re-verifying
// checksums the AEAD authenticated (New calls TrustWrittenChecksums). When the kernel
// refuses the header or the offloads, or TUNDeviceEnv asks for it, wireguard-go's TUN
// (its own TSO split and GRO, which verifies every checksum) is opened instead, and mode
// says why. The tunnel takes ownership when the device is passed to New.
func CreateTUN(name string, mtu int) (dev tun.Device, mode string, err error) {
	why := "asked for by " + TUNDeviceEnv
	if os.Getenv(TUNDeviceEnv) != "wireguard-go" {
		d, err := tap.OpenTUN(tap.Config{Name: name, MTU: mtu})
		if err == nil {
			if err = d.EnableOffload(); err == nil {
				return d, "weft (offload)", nil
			}
			d.Close()
		}
		reason, ok := tap.Refused(err)
		if !ok {
			return nil, "", fmt.Errorf("create TUN %q (needs CAP_NET_ADMIN and /dev/net/tun): %w", name, err)
		}
		why = reason
	}
	wg, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, "", fmt.Errorf("create TUN %q (needs CAP_NET_ADMIN and /dev/net/tun): %w", name, err)
	}
	return wg, "wireguard-go (" + why + ")", nil
}
