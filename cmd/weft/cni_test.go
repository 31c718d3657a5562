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

// fakeCNIPlugin writes an executable at dir/name that answers the CNI VERSION command with
// the versions given (and anything else with an error), as a real plugin does.
func fakeCNIPlugin(t *testing.T, dir, name string, versions ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	q := make([]string, len(versions))
	for i, v := range versions {
		q[i] = `"` + v + `"`
	}
	script := "#!/bin/sh\n[ \"$CNI_COMMAND\" = VERSION ] || exit 1\ncat >/dev/null\n" +
		`echo '{"cniVersion":"` + versions[len(versions)-1] + `","supportedVersions":[` + strings.Join(q, ",") + `]}'` + "\n"
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// noStandardCNIDirs keeps this machine's own plugins (/usr/lib/cni, /opt/cni/bin) out of a test.
func noStandardCNIDirs(t *testing.T) {
	saved := cniPluginDirs
	cniPluginDirs = nil
	t.Cleanup(func() { cniPluginDirs = saved })
}

// runCNIInstall runs `weft cni install` with args and returns its output and the conflist.
func runCNIInstall(t *testing.T, dir string, args ...string) (string, []byte, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(append([]string{"--socket", "/run/test/weft.sock", "cni", "install",
		"--conf-dir", filepath.Join(dir, "net.d"), "--bin-dir", filepath.Join(dir, "bin")}, args...))
	err := root.Execute()
	raw, _ := os.ReadFile(filepath.Join(dir, "net.d", "10-weft.conflist"))
	return out.String(), raw, err
}

func TestCNIInstall(t *testing.T) {
	noStandardCNIDirs(t)
	dir := t.TempDir()
	plugin := fakeCNIPlugin(t, filepath.Join(dir, "build"), "weft-cni-built", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
	out, raw, err := runCNIInstall(t, dir, "--plugin", plugin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "no portmap plugin") || !strings.Contains(out, "cniVersion 1.0.0") {
		t.Fatalf("want the 1.0.0 fallback and a note about the missing portmap:\n%s", out)
	}
	st, err := os.Stat(filepath.Join(dir, "bin", "weft-cni"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed plugin: %v %v", st, err)
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		t.Fatalf("libcni rejects it: %v\n%s", err, raw)
	}
	if len(list.Plugins) != 2 || list.Plugins[0].Network.Type != "weft-cni" || list.Plugins[1].Network.Type != "portmap" || list.CNIVersion != "1.0.0" {
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

// TestCNIInstall_Negotiates: the conflist's cniVersion is the highest that weft-cni and the
// chained portmap both speak, wherever portmap is found; a chain with nothing in common, or a
// "plugin" that does not answer VERSION, is refused with the versions named.
func TestCNIInstall_Negotiates(t *testing.T) {
	noStandardCNIDirs(t)
	all := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	for _, tc := range []struct {
		name     string
		portmap  []string // nil: a binary that is no CNI plugin
		inBin    bool     // portmap in --bin-dir (else in a --plugin-dir)
		want     string   // the cniVersion written; "" an error
		wantText string
	}{
		{"debian portmap 1.1.1", []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"}, true, "1.0.0", "portmap"},
		{"newer portmap", all, true, "1.1.0", "cniVersion 1.1.0"},
		{"portmap elsewhere", []string{"0.4.0", "1.0.0"}, false, "1.0.0", "ln -s"},
		{"only old versions", []string{"0.3.1", "0.4.0"}, true, "0.4.0", "cniVersion 0.4.0"},
		{"nothing in common", []string{"0.1.0", "0.2.0"}, true, "", "share no CNI version"},
		{"not a plugin", nil, true, "", "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			plugin := fakeCNIPlugin(t, filepath.Join(dir, "build"), "weft-cni", all...)
			pmDir := filepath.Join(dir, "bin")
			if !tc.inBin {
				pmDir = filepath.Join(dir, "distro")
			}
			if tc.portmap == nil {
				if err := os.MkdirAll(pmDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(pmDir, "portmap"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			} else {
				fakeCNIPlugin(t, pmDir, "portmap", tc.portmap...)
			}
			out, raw, err := runCNIInstall(t, dir, "--plugin", plugin, "--plugin-dir", filepath.Join(dir, "distro"))
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), "portmap") {
					t.Fatalf("want an error naming portmap and %q, got %v\n%s", tc.wantText, err, out)
				}
				if raw != nil {
					t.Fatalf("a conflist was written although install failed:\n%s", raw)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			list, err := libcni.ConfListFromBytes(raw)
			if err != nil || list.CNIVersion != tc.want {
				t.Fatalf("cniVersion: want %s, got %+v %v\n%s", tc.want, list, err, raw)
			}
			if !strings.Contains(out, tc.wantText) || !strings.Contains(out, "cniVersion "+tc.want) {
				t.Fatalf("output does not say %q / the version:\n%s", tc.wantText, out)
			}
		})
	}
}

// TestCNIInstall_ForcedVersion: --cni-version wins, warns when a plugin of the chain does not
// speak it, and a malformed value is refused.
func TestCNIInstall_ForcedVersion(t *testing.T) {
	noStandardCNIDirs(t)
	dir := t.TempDir()
	plugin := fakeCNIPlugin(t, filepath.Join(dir, "build"), "weft-cni", "0.4.0", "1.0.0", "1.1.0")
	fakeCNIPlugin(t, filepath.Join(dir, "bin"), "portmap", "0.4.0", "1.0.0")
	out, raw, err := runCNIInstall(t, dir, "--plugin", plugin, "--cni-version", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"cniVersion": "1.1.0"`) || !strings.Contains(out, "warning: portmap") {
		t.Fatalf("want 1.1.0 written with a warning about portmap:\n%s\n%s", out, raw)
	}
	for _, bad := range []string{"1.1", "v1.0.0", "1.0.0; rm -rf /", "01.0.0", ""} {
		_, _, err := runCNIInstall(t, t.TempDir(), "--plugin", plugin, "--cni-version", bad)
		if bad == "" {
			continue // empty is the default: negotiate
		}
		if err == nil || !strings.Contains(err.Error(), "MAJOR.MINOR.PATCH") {
			t.Fatalf("--cni-version %q: want a refusal, got %v", bad, err)
		}
	}
}

func TestCNIInstall_MissingPlugin(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"cni", "install", "--conf-dir", t.TempDir(), "--bin-dir", t.TempDir(), "--plugin", "/nonexistent/weft-cni"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("want an error saying how to get the plugin, got %v", err)
	}
}
