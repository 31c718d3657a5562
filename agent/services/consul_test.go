package services

import (
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/config"
)

// TestConsulTokenWarning: a Consul API that takes token-less writes from local users is
// named (loopback, all interfaces, a name); with a token, or on addresses no loopback
// connection reaches, there is nothing to warn of.
func TestConsulTokenWarning(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		token  string
		warn   bool
	}{
		{[]string{"127.0.0.1:8500"}, "", true},
		{[]string{"[::1]:8500"}, "", true},
		{[]string{"0.0.0.0:8500"}, "", true},
		{[]string{":8500"}, "", true},
		{[]string{"localhost:8500"}, "", true},
		{[]string{"overlay:8500", "127.0.0.1:8500"}, "", true},
		{[]string{"127.0.0.1:8500"}, "/etc/weft/consul.token", false},
		{[]string{"overlay:8500"}, "", false},
		{[]string{"10.42.1.1:8500"}, "", false},
		{nil, "", false},
	} {
		w := ConsulTokenWarning(config.ConsulAPIConfig{Listen: tc.listen, TokenFile: tc.token})
		if (w != "") != tc.warn {
			t.Errorf("%v token %q: warning %q, want one: %v", tc.listen, tc.token, w, tc.warn)
		}
		if w != "" && (!strings.Contains(w, "any local user") || !strings.Contains(w, "consul_api.token_file")) {
			t.Errorf("%v: the warning does not say the risk and the remedy: %q", tc.listen, w)
		}
	}
}
