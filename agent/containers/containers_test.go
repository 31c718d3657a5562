package containers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/weftnet/weft/agent/api"
)

func TestSubnetEnv_FlannelFormat(t *testing.T) {
	s := api.Subnet{Network: "10.42.0.0/16", Subnet: "10.42.3.0/24", MTU: 1412, IPMasq: true}
	want := "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1412\nFLANNEL_IPMASQ=true\n"
	if got := subnetEnv(s); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	path := filepath.Join(t.TempDir(), "run", "subnet.env")
	if err := writeSubnetEnv(path, s); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("file: %q", b)
	}
}
