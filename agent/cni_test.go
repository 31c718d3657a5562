package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubnetEnv_FlannelFormat(t *testing.T) {
	s := Subnet{Network: "10.42.0.0/16", Subnet: "10.42.3.0/24", MTU: 1412, IPMasq: true}
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

func TestCNIConfig_Validate(t *testing.T) {
	if err := (CNIConfig{Enabled: true, Bridge: "weft-br0"}).validate("l2"); err == nil || !strings.Contains(err.Error(), "l3") {
		t.Fatalf("l2 with cni: %v", err)
	}
	if err := (CNIConfig{Enabled: true, Bridge: "a-name-too-long-for-linux"}).validate("l3"); err == nil {
		t.Fatal("long bridge name accepted")
	}
	if err := (CNIConfig{Enabled: true, Bridge: "weft-br0"}).validate("l3"); err != nil {
		t.Fatal(err)
	}
	if err := (CNIConfig{Bridge: ""}).validate("l2"); err != nil {
		t.Fatalf("disabled cni is never an error: %v", err)
	}
}
