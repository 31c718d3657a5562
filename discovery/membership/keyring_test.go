package membership

import (
	"encoding/base64"
	"errors"
	"testing"
)

func TestParseGossipKey(t *testing.T) {
	k, err := GenerateGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"generated", base64.StdEncoding.EncodeToString(k), nil},
		{"newline", base64.StdEncoding.EncodeToString(k) + "\n", nil},
		{"short", base64.StdEncoding.EncodeToString(k[:16]), ErrGossipKeySize},
		{"garbage", "not base64!", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseGossipKey(tc.in)
			switch {
			case tc.name == "garbage":
				if err == nil {
					t.Fatal("garbage accepted")
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("ParseGossipKey: %v, want %v", err, tc.want)
			case err == nil && string(got) != string(k):
				t.Fatal("key changed")
			}
		})
	}
}

func TestNewKeyring(t *testing.T) {
	if kr, err := newKeyring(nil, true); kr != nil || err != nil {
		t.Fatalf("insecure: %v %v", kr, err)
	}
	if _, err := newKeyring(nil, false); !errors.Is(err, ErrNoGossipKey) {
		t.Fatalf("no key: %v", err)
	}
	kr, err := newKeyring(clTestGossipKey, false)
	if err != nil || len(kr.GetKeys()) != 1 {
		t.Fatalf("keyring: %v", err)
	}
}
