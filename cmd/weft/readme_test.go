package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/weftnet/weft/agent/config"
)

// machineDefaults are the defaults that depend on the machine or on who runs the agent (see
// "Without root" for a user's), as the table shows them.
var machineDefaults = map[string]string{
	"name":           "(the hostname)",
	"state_dir":      "/var/lib/weft",
	"control_socket": "/run/weft/weft.sock",
	"dns.listen":     "[127.0.0.1:53,overlay:53]",
}

// settingsTable renders config.Settings as the README's table: key, flag with its value type,
// default, help.
func settingsTable(t *testing.T) string {
	t.Helper()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	agentFlags(fs)
	d := config.DefaultConfig()
	var b strings.Builder
	b.WriteString("| YAML key | flag | default | |\n| --- | --- | --- | --- |\n")
	for _, s := range config.Settings {
		flag := "--" + s.Flag
		def := ""
		if f := fs.Lookup(s.Flag); f != nil {
			if name, _ := pflag.UnquoteUsage(f); name != "" {
				flag += " " + name
			}
			def = f.DefValue
		} else if s.Global {
			flag += " string"
			def = fmt.Sprint(reflect.ValueOf(s.Field(&d)).Elem().Interface())
		}
		switch def {
		case "false", "0", "[]", "0s":
			def = ""
		}
		// Defaults that depend on the machine or the user are shown as root gets them.
		if v, ok := machineDefaults[s.Key]; ok {
			def = v
		}
		if s.Append {
			def = "adds"
		}
		if def != "" && def != "adds" && !strings.HasPrefix(def, "(") {
			def = "`" + def + "`"
		}
		help := strings.ReplaceAll(s.Help, "|", `\\|`)
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", s.Key, flag, def, help)
	}
	return b.String()
}

// TestREADME_SettingsTable: the README's table of settings is config.Settings (every key with
// its flag); WEFT_UPDATE_README=1 rewrites it.
func TestREADME_SettingsTable(t *testing.T) {
	const path, begin, end = "../../README.md", "<!-- settings:begin -->\n", "<!-- settings:end -->"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q … %q markers", begin, end)
	}
	want := settingsTable(t)
	if got := s[i+len(begin) : j]; got != want {
		if os.Getenv("WEFT_UPDATE_README") != "" {
			if err := os.WriteFile(path, []byte(s[:i+len(begin)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("README.md's settings table differs from config.Settings: run WEFT_UPDATE_README=1 go test ./cmd/weft -run TestREADME_SettingsTable\n--- README\n%s\n--- want\n%s", got, want)
	}
	for _, st := range config.Settings {
		if !strings.Contains(want, "| `"+st.Key+"` | `--"+st.Flag) {
			t.Errorf("setting %s (--%s) is not in the table", st.Key, st.Flag)
		}
	}
}
