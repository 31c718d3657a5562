package bench

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
	"gopkg.in/yaml.v3"
)

func TestNewKeyPair(t *testing.T) {
	k, err := newKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := curve25519.X25519(k.private[:], curve25519.Basepoint)
	if !bytes.Equal(pub, k.public[:]) {
		t.Fatal("public key does not match the private key")
	}
	if k2, _ := newKeyPair(); k2.private == k.private {
		t.Fatal("two key pairs are equal")
	}
}

func TestWireGuardGoConfig(t *testing.T) {
	var priv, pub [32]byte
	priv[0], pub[0] = 0xaa, 0xbb
	got, err := wireGuardGoConfig(base64.StdEncoding.EncodeToString(priv[:]), 51820, base64.StdEncoding.EncodeToString(pub[:]), "192.168.231.2:51820", []string{"10.231.1.2/32", " 10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	want := "private_key=aa" + strings.Repeat("0", 62) + "\nlisten_port=51820\nreplace_peers=true\n" +
		"public_key=bb" + strings.Repeat("0", 62) + "\nreplace_allowed_ips=true\nendpoint=192.168.231.2:51820\n" +
		"allowed_ip=10.231.1.2/32\nallowed_ip=10.9.0.0/16\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	bad := []struct {
		name          string
		priv, pub, ep string
		port          int
		allowed       []string
	}{
		{"bad private key", "x", base64.StdEncoding.EncodeToString(pub[:]), "", 1, nil},
		{"bad peer key", base64.StdEncoding.EncodeToString(priv[:]), "", "", 1, nil},
		{"bad port", base64.StdEncoding.EncodeToString(priv[:]), base64.StdEncoding.EncodeToString(pub[:]), "", 70000, nil},
		{"bad endpoint", base64.StdEncoding.EncodeToString(priv[:]), base64.StdEncoding.EncodeToString(pub[:]), "192.168.231.2", 1, nil},
		{"bad prefix", base64.StdEncoding.EncodeToString(priv[:]), base64.StdEncoding.EncodeToString(pub[:]), "", 1, []string{"10.0.0.1"}},
	}
	for _, tt := range bad {
		if _, err := wireGuardGoConfig(tt.priv, tt.port, tt.pub, tt.ep, tt.allowed); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestWireGuardGoMain_Help(t *testing.T) {
	if err := WireGuardGoMain([]string{"--help"}); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if err := WireGuardGoMain([]string{"--private-key", "nope"}); err == nil {
		t.Fatal("bad key accepted")
	}
}

func TestWeftConfigs(t *testing.T) {
	ka, _ := newKeyPair()
	kb, _ := newKeyPair()
	tests := []struct {
		v          weftVariant
		target     string
		port       int
		allowedOfB string
	}{
		{weftVariant{"l3", "wireguard"}, weftL3AddrB, weftPort, weftL3SubB},
		{weftVariant{"l2", "wireguard"}, weftL2AddrB, weftPort, weftL2AddrB + "/32"},
		{weftVariant{"l2", "none"}, weftL2AddrB, weftVXLAN, weftL2AddrB + "/32"},
	}
	for _, tt := range tests {
		t.Run(tt.v.mode+"-"+tt.v.encryption, func(t *testing.T) {
			dir := t.TempDir()
			a, b, target := weftConfigs(tt.v, dir, ka, kb)
			if target != tt.target || a.ListenPort != tt.port || b.Mode != tt.v.mode || b.Encryption != tt.v.encryption {
				t.Fatalf("a %+v b %+v target %s", a, b, target)
			}
			if !a.Gossip.Disabled || a.StateDir == b.StateDir || a.ControlSocket == b.ControlSocket {
				t.Fatalf("hosts must not share state or sockets, gossip off: %+v %+v", a, b)
			}
			if a.Peers[0].PublicKey != kb.public.String() || a.Peers[0].AllowedIPs[0] != tt.allowedOfB ||
				a.Peers[0].Endpoint != underlayB+":"+strconv.Itoa(tt.port) {
				t.Fatalf("a's peer: %+v", a.Peers[0])
			}
			path, err := writeWeftFiles(a, ka)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			var m map[string]any
			if err := yaml.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if g, _ := m["gossip"].(map[string]any); g["disabled"] != true || m["mode"] != tt.v.mode {
				t.Fatalf("YAML:\n%s", data)
			}
			st, err := os.Stat(filepath.Join(a.StateDir, "private.key"))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("private.key: %v %v", st, err)
			}
		})
	}
}
