package membership

import (
	"encoding/base64"
	"errors"
	"log/slog"
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

func TestOpenKeyring(t *testing.T) {
	cfg := Config{Insecure: true, Logger: slog.New(slog.DiscardHandler)}
	if kr, err := openKeyring(&cfg); kr != nil || err != nil {
		t.Fatalf("insecure: %v %v", kr, err)
	}
	cfg.Insecure = false
	if _, err := openKeyring(&cfg); !errors.Is(err, ErrNoGossipKey) {
		t.Fatalf("no key: %v", err)
	}
	cfg.GossipKey = clTestGossipKey
	kr, err := openKeyring(&cfg)
	if err != nil || len(kr.Keys()) != 1 {
		t.Fatalf("keyring: %v", err)
	}
}
