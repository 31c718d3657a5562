package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func execute(args ...string) error {
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	return root.Execute()
}

// TestUnknownFlag_Suggests: an unknown flag of any command names the nearest known ones; a
// flag spelled as a YAML key names that key's flag; far-off names get only the help hint.
func TestUnknownFlag_Suggests(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // suggested flags; nil: none
	}{
		{[]string{"agent", "--consul-api-listen", "x"}, []string{"consul-listen"}},
		{[]string{"agent", "--consul_api.listen=x"}, []string{"consul-listen"}},
		{[]string{"agent", "--gossip-fst"}, []string{"gossip-fast"}},
		{[]string{"agent", "--cluster", "10.0.0.0/8"}, []string{"cluster-cidr"}},
		{[]string{"register", "web", "--adress", "10.42.1.2"}, []string{"address"}},
		{[]string{"peers", "--jsn"}, []string{"json"}},
		{[]string{"cni", "install", "--cni-versoin", "1.0.0"}, []string{"cni-version"}},
		{[]string{"members", "--sockett", "/x"}, []string{"socket"}}, // an inherited flag
		{[]string{"agent", "--zzzzzzzz"}, nil},
	} {
		err := execute(tc.args...)
		if err == nil {
			t.Errorf("%v: accepted", tc.args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "unknown flag") || !strings.Contains(msg, "--help") {
			t.Errorf("%v: %q does not say what is wrong and where the flags are", tc.args, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, "Did you mean this?\n\t--"+w) {
				t.Errorf("%v: %q does not suggest --%s", tc.args, msg, w)
			}
		}
		if tc.want == nil && strings.Contains(msg, "Did you mean") {
			t.Errorf("%v: suggests something for a far-off name: %q", tc.args, msg)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"consul-api-listen", "consul-listen", 4}, {"json", "json", 0}} {
		if d := editDistance(tc.a, tc.b); d != tc.d || editDistance(tc.b, tc.a) != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// TestFlagHelp_ShowsValueType: every flag of every command that takes a value shows a value
// name in --help ("--address ip", "--retry-interval duration"), so none reads as a switch.
func TestFlagHelp_ShowsValueType(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			n++
			if f.Value.Type() == "bool" || f.NoOptDefVal != "" {
				return
			}
			if name, _ := pflag.UnquoteUsage(f); name == "" {
				t.Errorf("%s --%s takes a value but its help shows no value name (type %q)", c.CommandPath(), f.Name, f.Value.Type())
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd())
	if n < 100 {
		t.Fatalf("walked only %d flags: the tree was not walked", n)
	}
}
