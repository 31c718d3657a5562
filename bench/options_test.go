package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptions_withDefaults(t *testing.T) {
	o, err := Options{WeftBin: "/bin/true"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != DefaultRounds || o.Duration != DefaultDuration || o.Streams != DefaultStreams || o.Pings != DefaultPings {
		t.Errorf("defaults not applied: %+v", o)
	}
	if !strings.HasPrefix(o.OutDir, "bench-results/") || o.Progress == nil || o.Logger == nil {
		t.Errorf("OutDir %q, Progress %v, Logger %v", o.OutDir, o.Progress, o.Logger)
	}
	if o, _ := (Options{}).withDefaults(); o.WeftBin == "" {
		t.Error("WeftBin has no default")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := (Options{}).withDefaults(); o.WireGuardGoBin != exe {
		t.Errorf("WireGuardGoBin = %q, want the executable %q", o.WireGuardGoBin, exe)
	}

	bad := []struct {
		name string
		o    Options
		want string
	}{
		{"unknown system", Options{Systems: []string{"veth", "nope"}}, `unknown system "nope"`},
		{"duplicate", Options{Systems: []string{"veth", "vxlan", "veth"}}, "listed twice"},
		{"negative rounds", Options{Rounds: -1}, "positive"},
		{"too many streams", Options{Streams: 500}, "128"},
		{"underlay MTU too small", Options{UnderlayMTUs: []int{1500, 1279}}, "underlay MTU 1279 outside [1280, 65535]"},
		{"underlay MTU too large", Options{UnderlayMTUs: []int{65536}}, "outside"},
		{"underlay MTU twice", Options{UnderlayMTUs: []int{9001, 1500, 9001}}, "underlay MTU 9001 is listed twice"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.o.withDefaults()
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrOptions with %q", err, tt.want)
			}
		})
	}
}

func TestOptions_durationSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{time.Second: 1, 1500 * time.Millisecond: 2, 5 * time.Second: 5, time.Millisecond: 1} {
		if got := (Options{Duration: d}).durationSeconds(); got != want {
			t.Errorf("durationSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := Flags(fs)
	if o.Rounds != DefaultRounds || o.Duration != DefaultDuration || fmt.Sprint(o.UnderlayMTUs) != "[1500]" {
		t.Fatalf("flag defaults: %+v", o)
	}
	err := fs.Parse([]string{"--systems", "veth,wireguard-go", "--rounds", "5", "--duration", "2s", "--streams", "8",
		"--pings", "20", "--out", "-", "--weft-bin", "/usr/local/bin/weft", "--underlay-mtu", "1500,9001"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Systems: []string{"veth", "wireguard-go"}, Rounds: 5, Duration: 2 * time.Second, Streams: 8, Pings: 20, OutDir: "-", WeftBin: "/usr/local/bin/weft"}
	if strings.Join(o.Systems, ",") != "veth,wireguard-go" || o.Rounds != want.Rounds || o.Duration != want.Duration ||
		o.Streams != want.Streams || o.Pings != want.Pings || o.OutDir != want.OutDir || o.WeftBin != want.WeftBin ||
		fmt.Sprint(o.UnderlayMTUs) != "[1500 9001]" {
		t.Fatalf("parsed %+v, want %+v", o, want)
	}
}

func TestSystemNames(t *testing.T) {
	got := strings.Join(SystemNames(), ",")
	if got != "veth,vxlan,wireguard-go,weft,weft-l2,weft-l2-plain,weft-netstack,weft-policy" {
		t.Fatalf("SystemNames() = %s", got)
	}
	for _, name := range SystemNames() {
		if lookupSystem(name).placeholder {
			t.Errorf("%s is a placeholder, left out of the default set", name)
		}
	}
}

func TestDefaultWeftBin(t *testing.T) {
	bin, onPath := t.TempDir(), t.TempDir()
	exe := filepath.Join(bin, "weft-bench")
	t.Setenv("PATH", onPath)
	if got := DefaultWeftBin(exe); got != filepath.Join(bin, "weft") {
		t.Errorf("nothing installed: %q, want the path next to weft-bench (its check then says it is missing)", got)
	}
	write := func(p string) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(onPath, "weft"))
	if got := DefaultWeftBin(exe); got != filepath.Join(onPath, "weft") {
		t.Errorf("on PATH: %q", got)
	}
	write(filepath.Join(bin, "weft"))
	if got := DefaultWeftBin(exe); got != filepath.Join(bin, "weft") {
		t.Errorf("next to weft-bench: %q, want it preferred over PATH", got)
	}
}

func TestProfileName(t *testing.T) {
	for tag, want := range map[string]string{
		"[round 2/3] weft-l2":   "weft-l2-r2",
		"[round 1/1] weft":      "weft-r1",
		"weft-netstack":         "weft-netstack",
		"[round 10/12] a b/../": "a-b-----r10",
	} {
		if got := profileName(tag); got != want {
			t.Errorf("profileName(%q) = %q, want %q", tag, got, want)
		}
	}
}
