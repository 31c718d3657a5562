package config

import (
	"strings"
	"testing"
)

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

func TestValidFraming(t *testing.T) {
	if err := validFraming("wireguard", "l2"); err == nil || !strings.Contains(err.Error(), "L3 only") {
		t.Errorf("framing in l2: %v", err)
	}
	if err := validFraming("vxlan", "l3"); err == nil {
		t.Error("unknown framing accepted")
	}
}
