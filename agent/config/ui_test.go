package config

import (
	"strings"
	"testing"
)

// TestUIConfig_check: the console's address and the token a non-loopback one needs.
func TestUIConfig_check(t *testing.T) {
	for _, tt := range []struct {
		listen, token string
		want          string // "" valid; else a substring of the one problem
	}{
		{"", "", ""},
		{DefaultUIListen, "", ""},
		{"[::1]:9190", "", ""},
		{"localhost:9190", "", ""},
		{"10.0.0.5:9190", "/etc/weft/ui.token", ""},
		{"10.0.0.5:9190", "", "ui.token_file"},
		{":9190", "", "ui.token_file"},
		{"0.0.0.0:9190", "", "ui.token_file"},
		{"nowhere", "", "must be IP:PORT"},
		{"example.com:9190", "", "must be IP:PORT"},
		{"127.0.0.1:0", "", "must be IP:PORT"},
		{"127.0.0.1:99999", "", "must be IP:PORT"},
	} {
		c := DefaultConfig()
		c.Name = "h"
		c.UI = UIConfig{Listen: tt.listen, TokenFile: tt.token}
		_, err := Resolve(c)
		var ui []*Error
		for _, p := range Problems(err) {
			if strings.HasPrefix(p.Key, "ui.") {
				ui = append(ui, p)
			}
		}
		switch {
		case tt.want == "" && len(ui) != 0:
			t.Errorf("ui %q token %q: %v, want valid", tt.listen, tt.token, ui)
		case tt.want != "" && (len(ui) != 1 || !strings.Contains(ui[0].Error(), tt.want) || !strings.Contains(ui[0].Error(), "ui.listen")):
			t.Errorf("ui %q token %q: %v, want one problem naming ui.listen and %q", tt.listen, tt.token, ui, tt.want)
		}
	}
}
