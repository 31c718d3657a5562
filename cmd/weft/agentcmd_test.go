package main

import (
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/weftnet/weft/agent/config"
)

func agentCmd(t *testing.T) *cobra.Command {
	t.Helper()
	cmd, _, err := newRootCmd().Find([]string{"agent"})
	if err != nil || cmd.Name() != "agent" {
		t.Fatalf("no agent command: %v", err)
	}
	return cmd
}

// TestAgentFlags_MatchSettings: every flag of `weft agent` (but -c) is a row of
// config.Settings and every row has its flag, with the default of config.DefaultConfig.
func TestAgentFlags_MatchSettings(t *testing.T) {
	cmd := agentCmd(t)
	d := config.DefaultConfig()
	all := pflag.NewFlagSet("all", pflag.ContinueOnError)
	all.AddFlagSet(cmd.LocalFlags())
	all.AddFlagSet(cmd.InheritedFlags())
	for _, s := range config.Settings {
		f := all.Lookup(s.Flag)
		if f == nil {
			t.Errorf("setting %q: weft agent has no --%s", s.Key, s.Flag)
			continue
		}
		if f.Usage != s.Help {
			t.Errorf("--%s: usage %q, want the table's %q", s.Flag, f.Usage, s.Help)
		}
		if s.Global {
			continue // --socket's default is WEFT_SOCKET when set (TestClient_AgentNotRunning)
		}
		want := fmt.Sprint(reflect.ValueOf(s.Field(&d)).Elem().Interface())
		switch v := s.Field(&d).(type) {
		case *[]string:
			want = "[" + strings.Join(*v, ",") + "]"
			if s.Append {
				want = "[]"
			}
		case *config.Prefix:
			want = v.Prefix.String()
			if !v.IsValid() {
				want = ""
			}
		case *config.Addr:
			want = ""
			if v.IsValid() {
				want = v.Addr.String()
			}
		case *config.Duration:
			want = v.Duration.String()
		case *[]config.ForwardConfig, *[]config.ExposeConfig:
			want = "" // appended to the file's list, nothing by default
		}
		if f.DefValue != want {
			t.Errorf("--%s: default %q, want DefaultConfig's %q", s.Flag, f.DefValue, want)
		}
	}
	all.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "check" || f.Name == "help" { // the command's own, not settings
			return
		}
		if !slices.ContainsFunc(config.Settings, func(s config.Setting) bool { return s.Flag == f.Name }) {
			t.Errorf("flag --%s of weft agent has no row (no YAML key) in config.Settings", f.Name)
		}
	})
}

// TestApplyFlags: given flags win over the file, absent ones leave it alone, --join adds to
// the file's list.
func TestApplyFlags(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	flagged := agentFlags(fs)
	if err := fs.Parse([]string{"--mode", "l2", "--join", "b,c", "--cluster-cidr", "10.9.1.2/16",
		"--address", "10.9.0.7", "--dns-ttl", "2s", "--no-dns", "--vni", "7", "--dns-listen", "127.0.0.1:5353"}); err != nil {
		t.Fatal(err)
	}
	file := config.DefaultConfig()
	file.Gossip.Join = []string{"a"}
	file.Interface = "from-file"
	applyFlags(fs, &file, flagged)
	if file.Mode != "l2" || file.Interface != "from-file" || !slices.Equal(file.Gossip.Join, []string{"a", "b", "c"}) ||
		file.ClusterCIDR.Prefix != netip.MustParsePrefix("10.9.0.0/16") || file.Address.Addr != netip.MustParseAddr("10.9.0.7") ||
		file.DNS.TTL.Duration != 2*time.Second || !file.DNS.Disabled || file.VNI != 7 || !slices.Equal(file.DNS.Listen, []string{"127.0.0.1:5353"}) {
		t.Fatalf("after flags: %+v", file)
	}
	bad := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	agentFlags(bad)
	bad.SetOutput(io.Discard)
	for _, args := range [][]string{{"--subnet", "nonsense"}, {"--address", "10.1"}} {
		if err := bad.Parse(args); err == nil || !strings.Contains(err.Error(), "is not a") {
			t.Errorf("%v: %v, want it refused", args, err)
		}
	}
}

// TestApplyFlags_Relays: --forward and --expose take one entry each, repeatable, added to the
// file's lists; a malformed one is refused with the expected form.
func TestApplyFlags_Relays(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	flagged := agentFlags(fs)
	if err := fs.Parse([]string{"--forward", "127.0.0.1:5432=db.service.weft:5432", "--forward", "127.0.0.1:5353=dns.service.weft:53/udp",
		"--expose", "8080=127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	file := config.DefaultConfig()
	file.Forward = []config.ForwardConfig{{Listen: "127.0.0.1:80", To: "web.service.weft:80"}}
	applyFlags(fs, &file, flagged)
	wantF := []config.ForwardConfig{{Listen: "127.0.0.1:80", To: "web.service.weft:80"},
		{Listen: "127.0.0.1:5432", To: "db.service.weft:5432"}, {Listen: "127.0.0.1:5353", To: "dns.service.weft:53", Proto: "udp"}}
	if !slices.Equal(file.Forward, wantF) || !slices.Equal(file.Expose, []config.ExposeConfig{{Port: 8080, To: "127.0.0.1:8080"}}) {
		t.Fatalf("forward %+v expose %+v", file.Forward, file.Expose)
	}
	file.Netstack = true
	if err := file.Check(); err != nil && strings.Contains(err.Error(), "forward") {
		t.Fatalf("the flags' entries do not validate as the file's: %v", err)
	}
	for _, args := range [][]string{{"--forward", "127.0.0.1:5432"}, {"--forward", "=x:1"}, {"--forward", "a=b/sctp"},
		{"--expose", "http=127.0.0.1:80"}, {"--expose", "0=127.0.0.1:80"}, {"--expose", "70000=127.0.0.1:80"}} {
		bad := pflag.NewFlagSet("agent", pflag.ContinueOnError)
		agentFlags(bad)
		bad.SetOutput(io.Discard)
		if err := bad.Parse(args); err == nil || !strings.Contains(err.Error(), "like ") {
			t.Errorf("%v: %v, want a refusal that shows the form", args, err)
		}
	}
}
