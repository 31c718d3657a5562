// Package cnilab prepares CNI plugins for the end-to-end tests: weft-cni ($WEFT_CNI_BIN, or
// built) and the standard portmap plugin, built from containernetworking/plugins (a tool of
// this module, so the version is go.mod's), and a bin directory per lab host whose entries
// run the real plugin inside that host's network namespace, as a runtime on that host would.
package cnilab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	once    sync.Once
	realDir string
	err     error
)

// Plugins returns a directory holding weft-cni and portmap, built once per test binary.
func Plugins() (string, error) {
	once.Do(func() {
		realDir, err = os.MkdirTemp("", "weft-cni-plugins")
		if err != nil {
			return
		}
		weft := filepath.Join(realDir, "weft-cni")
		if b := os.Getenv("WEFT_CNI_BIN"); b != "" {
			err = os.Symlink(b, weft)
		} else {
			err = build(weft, "github.com/weftnet/weft/cmd/weft-cni")
		}
		if err == nil {
			err = build(filepath.Join(realDir, "portmap"), "github.com/containernetworking/plugins/plugins/meta/portmap")
		}
	})
	return realDir, err
}

func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// BinDir writes into dir one script per plugin that runs it inside network namespace ns
// (a name under /run/netns) and returns dir, the CNI path for libcni.
func BinDir(dir, ns string) (string, error) {
	real, err := Plugins()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, p := range []string{"weft-cni", "portmap"} {
		script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns, filepath.Join(real, p))
		if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ChainPlugin builds internal/cnilab/chainplugin, a chained plugin that speaks CNI 1.0.0 only
// (as Debian's portmap), to path; `touch path.fail` makes its ADD fail.
func ChainPlugin(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return build(path, "github.com/weftnet/weft/internal/cnilab/chainplugin")
}

// Weft returns the weft binary: $WEFT_BIN, or one built into dir.
func Weft(dir string) (string, error) {
	if b := os.Getenv("WEFT_BIN"); b != "" {
		return b, nil
	}
	p := filepath.Join(dir, "weft")
	return p, build(p, "github.com/weftnet/weft/cmd/weft")
}
