package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/internal/fsutil"
)

// The CNI plugin is its own small binary (cmd/weft-cni), so the daemon does not carry the CNI
// libraries; `weft cni install` puts it and a conflist where container runtimes look.

func newCNICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cni", Short: "Container networking: install the weft-cni plugin"}
	cmd.AddCommand(newCNIInstallCmd(g))
	return cmd
}

// cniConflist is the network configuration list `weft cni install` writes: weft-cni, then
// the standard portmap plugin for the runtime's port mappings.
func cniConflist(name, version, socket, bridge string) ([]byte, error) {
	weft := map[string]any{"type": "weft-cni", "bridge": bridge}
	if socket != "" {
		weft["socket"] = socket
	}
	list := map[string]any{
		"cniVersion": version,
		"name":       name,
		"plugins": []any{
			weft,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	return append(b, '\n'), err
}

// cniChained are the plugin types the conflist chains after weft-cni.
var cniChained = []string{"portmap"}

func newCNIInstallCmd(g *globals) *cobra.Command {
	var confDir, binDir, name, plugin, bridge, forceVersion string
	var pluginDirs []string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Write the weft conflist into the CNI config directory and weft-cni into the CNI bin directory",
		Long: `Writes CONF_DIR/10-NAME.conflist (weft-cni chained with portmap) and copies the
weft-cni binary (by default the one beside this weft binary) into BIN_DIR. The portmap
plugin is the standard one from containernetworking/plugins (Debian: containernetworking-plugins,
in /usr/lib/cni).

The conflist's cniVersion is the highest CNI version that weft-cni and every chained plugin
support: install asks each with the CNI VERSION command (portmap is looked up in BIN_DIR, the
--plugin-dir directories, then /opt/cni/bin, /usr/lib/cni, /usr/libexec/cni,
/usr/local/libexec/cni and /usr/local/lib/cni) and says what it chose. A plugin given a version
it does not speak refuses ADD and DEL alike. When portmap is not found, 1.0.0 is written.
Runtimes built on libcni before 1.2 (podman 4, containerd 1.6 and 1.7) handle at most 1.0.0:
with a newer portmap but such a runtime, pass --cni-version 1.0.0.

The agent must run with cni.enabled: true.`,
		Example: `  weft cni install
  weft cni install --plugin-dir /usr/lib/cni --cni-version 1.0.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if plugin == "" {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find weft-cni: %w (pass --plugin)", err)
				}
				plugin = filepath.Join(filepath.Dir(self), "weft-cni")
			}
			if _, err := os.Stat(plugin); err != nil {
				return fmt.Errorf("weft-cni binary: %w (build it with make build, or pass --plugin PATH)", err)
			}
			if forceVersion != "" {
				if _, err := parseCNIVersion(forceVersion); err != nil {
					return fmt.Errorf("--cni-version: %w", err)
				}
			}
			dirs := append(append([]string{binDir}, pluginDirs...), cniPluginDirs...)
			version, found, err := negotiateCNIVersion(cmd.Context(), plugin, cniChained, dirs)
			if err != nil && forceVersion == "" {
				return fmt.Errorf("cni install: %w (pass --cni-version to write one anyway)", err)
			}
			if forceVersion != "" {
				version = forceVersion
			}
			conf, err := cniConflist(name, version, g.socket, bridge)
			if err != nil {
				return err
			}
			binPath := filepath.Join(binDir, "weft-cni")
			if err := copyFileAtomic(binPath, plugin, 0o755); err != nil {
				return err
			}
			confPath := filepath.Join(confDir, "10-"+name+".conflist")
			if err := os.MkdirAll(filepath.Dir(confPath), 0o755); err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(confPath, conf, 0o644); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s\ninstalled %s\n", confPath, binPath)
			if forceVersion != "" {
				fmt.Fprintf(out, "cniVersion %s (--cni-version); the plugins: %s\n", version, describeCNIVersions(found))
			} else {
				fmt.Fprintf(out, "cniVersion %s: the highest all of them support: %s\n", version, describeCNIVersions(found))
			}
			for _, p := range found {
				switch {
				case p.Type == "weft-cni":
				case forceVersion != "" && p.Path != "" && !slices.Contains(p.Supported, version):
					fmt.Fprintf(out, "warning: %s (%s) does not speak cniVersion %s: it will refuse ADD and DEL\n", p.Type, p.Path, version)
				case p.Path == "":
					fmt.Fprintf(out, "note: no %s plugin in %s: install containernetworking/plugins' %s (Debian: apt install containernetworking-plugins) for port mappings, then run this again\n", p.Type, strings.Join(dirs, ", "), p.Type)
				case filepath.Dir(p.Path) != filepath.Clean(binDir):
					fmt.Fprintf(out, "note: %s is in %s, not in %s: a runtime that searches one directory (containerd's bin_dir) needs it there too (ln -s %s %s)\n", p.Type, filepath.Dir(p.Path), binDir, p.Path, filepath.Join(binDir, p.Type))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&confDir, "conf-dir", "/etc/cni/net.d", "CNI network configuration `directory`")
	cmd.Flags().StringVar(&binDir, "bin-dir", "/opt/cni/bin", "CNI plugin `directory` weft-cni is installed into")
	cmd.Flags().StringVar(&name, "name", "weft", "network `name`")
	cmd.Flags().StringVar(&bridge, "bridge", "weft-br0", "the containers' bridge `name` (the agent's cni.bridge)")
	cmd.Flags().StringVar(&plugin, "plugin", "", "the weft-cni `binary` to install (default: weft-cni beside weft)")
	cmd.Flags().StringArrayVar(&pluginDirs, "plugin-dir", nil, "also look for the chained plugins in this `directory`, before the standard ones (repeatable)")
	cmd.Flags().StringVar(&forceVersion, "cni-version", "", "write this cniVersion instead of the negotiated one (`MAJOR.MINOR.PATCH`)")
	return cmd
}

// copyFileAtomic copies src to dst through a temporary file and a rename, so a runtime
// executing the old plugin meanwhile never sees half a binary (ETXTBSY on an in-place write).
func copyFileAtomic(dst, src string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
