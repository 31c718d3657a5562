package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/weftnet/weft/cni"
)

func TestCNIInstall(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "weft-cni-built")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf, bin := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin")
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--socket", "/run/test/weft.sock", "cni", "install", "--conf-dir", conf, "--bin-dir", bin, "--plugin", plugin})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no portmap plugin") {
		t.Fatalf("no note about the missing portmap:\n%s", out.String())
	}
	st, err := os.Stat(filepath.Join(bin, "weft-cni"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed plugin: %v %v", st, err)
	}
	raw, err := os.ReadFile(filepath.Join(conf, "10-weft.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		t.Fatalf("libcni rejects it: %v\n%s", err, raw)
	}
	if len(list.Plugins) != 2 || list.Plugins[0].Network.Type != "weft-cni" || list.Plugins[1].Network.Type != "portmap" {
		t.Fatalf("plugins: %s", raw)
	}
	// libcni gives each plugin the list's name and version, as here.
	pc, err := libcni.InjectConf(list.Plugins[0], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cni.ParseConfig(pc.Bytes)
	if err != nil || c.Socket != "/run/test/weft.sock" || c.Bridge != "weft-br0" {
		t.Fatalf("weft entry: %+v %v", c, err)
	}
}

func TestCNIInstall_MissingPlugin(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"cni", "install", "--conf-dir", t.TempDir(), "--bin-dir", t.TempDir(), "--plugin", "/nonexistent/weft-cni"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("want an error saying how to get the plugin, got %v", err)
	}
}
