package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/internal/version"
)

func TestVersion_JSONAndFlag(t *testing.T) {
	out, err := run(t, "", "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got versionInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("version --json printed %q: %v", out, err)
	}
	want := versionInfo{Info: version.Get(), Protocol: agent.ProtocolVersion}
	if got != want || got.GoVersion != runtime.Version() || got.OS+"/"+got.Arch != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version --json = %+v, want %+v", got, want)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := run(t, "", args...)
		if err != nil || !strings.HasPrefix(out, "weft "+want.Version+" (protocol ") {
			t.Fatalf("weft %v = %q, %v", args, out, err)
		}
	}
}
