package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
func cniConflist(name, socket, bridge string) ([]byte, error) {
	weft := map[string]any{"type": "weft-cni", "bridge": bridge}
	if socket != "" {
		weft["socket"] = socket
	}
	list := map[string]any{
		"cniVersion": "1.1.0",
		"name":       name,
		"plugins": []any{
			weft,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, err := json.MarshalIndent(list, "", "  ")
	return append(b, '\n'), err
}

func newCNIInstallCmd(g *globals) *cobra.Command {
	var confDir, binDir, name, plugin, bridge string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Write the weft conflist into the CNI config directory and weft-cni into the CNI bin directory",
		Long: `Writes CONF_DIR/10-NAME.conflist (weft-cni chained with portmap) and copies the
weft-cni binary (by default the one beside this weft binary) into BIN_DIR. The portmap
plugin is the standard one from containernetworking/plugins: install it into BIN_DIR too.
The agent must run with cni.enabled: true.`,
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
			conf, err := cniConflist(name, g.socket, bridge)
			if err != nil {
				return err
			}
			confPath := filepath.Join(confDir, "10-"+name+".conflist")
			if err := os.MkdirAll(filepath.Dir(confPath), 0o755); err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(confPath, conf, 0o644); err != nil {
				return err
			}
			binPath := filepath.Join(binDir, "weft-cni")
			if err := copyFileAtomic(binPath, plugin, 0o755); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s\ninstalled %s\n", confPath, binPath)
			if _, err := os.Stat(filepath.Join(binDir, "portmap")); err != nil {
				fmt.Fprintf(out, "note: %s has no portmap plugin; install containernetworking/plugins' portmap there for port mappings\n", binDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&confDir, "conf-dir", "/etc/cni/net.d", "CNI network configuration directory")
	cmd.Flags().StringVar(&binDir, "bin-dir", "/opt/cni/bin", "CNI plugin directory")
	cmd.Flags().StringVar(&name, "name", "weft", "network name")
	cmd.Flags().StringVar(&bridge, "bridge", "weft-br0", "the containers' bridge (the agent's cni.bridge)")
	cmd.Flags().StringVar(&plugin, "plugin", "", "the weft-cni binary to install (default: weft-cni beside weft)")
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
