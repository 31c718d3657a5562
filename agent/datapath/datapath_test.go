package datapath

import (
	"fmt"
	"testing"

	"github.com/weftnet/weft/agent/config"
)

func TestNew_ChosenByConfig(t *testing.T) {
	for _, tc := range []struct{ mode, encryption, want string }{
		{"l3", "wireguard", "*datapath.l3Path"},
		{"l2", "wireguard", "*datapath.l2Path"},
		{"l2", "none", "*datapath.plainPath"},
	} {
		cfg := config.DefaultConfig()
		cfg.Mode, cfg.Encryption = tc.mode, tc.encryption
		if got := fmt.Sprintf("%T", New(ConfigOf(cfg), Deps{})); got != tc.want {
			t.Errorf("mode %s, encryption %s: %s, want %s", tc.mode, tc.encryption, got, tc.want)
		}
	}
}
