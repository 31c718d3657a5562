package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/netlab"
)

func runIn(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDeb_InstallRunRemove builds the Debian package (nfpm, packaging/mkdeb), installs it
// into this machine's root with dpkg -i, runs the installed weft --version, verifies the
// installed unit, then removes (dpkg -r) and purges it and checks nothing is left. It changes
// the machine, so it runs only as root, and not under -short.
func TestDeb_InstallRunRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a package into the machine's root: not under -short")
	}
	if os.Geteuid() != 0 {
		netlab.SkipOrFail(t, "dpkg -i needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		netlab.SkipOrFail(t, "dpkg not installed")
	}
	if out, err := exec.Command("dpkg", "-s", "weft").CombinedOutput(); err == nil && strings.Contains(string(out), "Status: install ok installed") {
		t.Fatal("a weft package is already installed on this machine: remove it first (dpkg -P weft)")
	}
	for _, p := range []string{"/usr/bin/weft", "/etc/weft/weft.yaml"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists outside of any package: the test would overwrite it", p)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, docs := filepath.Join(dir, "weft"), filepath.Join(dir, "docs")
	const version = "0.0~test1"
	runIn(t, root, "go", "build", "-trimpath", "-ldflags", "-X github.com/weftnet/weft/internal/version.version="+version, "-o", bin, "./cmd/weft")
	runIn(t, root, bin, "gen-docs", "--man", filepath.Join(docs, "man"), "--completion", filepath.Join(docs, "completion"))
	deb := strings.TrimSpace(runIn(t, root, "go", "run", "./packaging/mkdeb", "-bin", bin, "-docs", docs, "-version", version, "-out", dir))
	t.Logf("built %s", deb)
	contents := runIn(t, root, "dpkg-deb", "-c", deb)
	for _, want := range []string{"./usr/bin/weft", "./lib/systemd/system/weft.service", "./etc/weft/weft.yaml",
		"./usr/share/man/man1/weft-agent.1", "./usr/share/bash-completion/completions/weft", "./usr/share/doc/weft/weft.example.yaml"} {
		if !strings.Contains(contents, want) {
			t.Errorf("the package lacks %s", want)
		}
	}

	t.Cleanup(func() { _ = exec.Command("dpkg", "-P", "weft").Run() })
	runIn(t, root, "dpkg", "-i", deb)
	if out := runIn(t, root, "/usr/bin/weft", "--version"); !strings.Contains(out, "weft "+version) {
		t.Fatalf("installed weft --version: %q", out)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/weft.service").CombinedOutput()
		if err != nil || strings.Contains(string(out), "weft.service") {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}
	runIn(t, root, "dpkg", "-r", "weft")
	if _, err := os.Stat("/usr/bin/weft"); err == nil {
		t.Fatal("/usr/bin/weft is left after dpkg -r")
	}
	if _, err := os.Stat("/etc/weft/weft.yaml"); err != nil {
		t.Fatal("dpkg -r removed the configuration (a conffile stays until purge)")
	}
	runIn(t, root, "dpkg", "-P", "weft")
	if _, err := os.Stat("/etc/weft"); err == nil {
		t.Fatal("/etc/weft is left after dpkg -P")
	}
}
