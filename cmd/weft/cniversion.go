package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CNI version negotiation for `weft cni install`. A runtime hands every plugin of a conflist
// the list's cniVersion, and a plugin that does not speak it refuses ADD and DEL alike: one
// chained plugin too old for the list leaves containers half-wired and impossible to tear
// down. So install asks each plugin of the chain which versions it speaks (the CNI VERSION
// command) and writes the highest they all share. The daemon binary links no CNI library
// (internal/deptest), so the VERSION exchange, a few lines of JSON, is done here.

// cniFallbackVersion is written when a chained plugin cannot be asked (not installed yet): the
// newest version that every plugin release since 2021 and the runtimes built on libcni 1.0 and
// 1.1 (podman 4, containerd 1.6/1.7) speak.
const cniFallbackVersion = "1.0.0"

// cniPluginDirs are where runtimes look for plugins when not told otherwise: containerd and
// cnitool /opt/cni/bin, podman's default cni_plugin_dirs the others (Debian's
// containernetworking-plugins installs into /usr/lib/cni).
var cniPluginDirs = []string{"/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni", "/usr/local/libexec/cni", "/usr/local/lib/cni"}

// cniPluginVersions is what a plugin answered to VERSION.
type cniPluginVersions struct {
	Type      string   // the plugin's type ("portmap")
	Path      string   // the binary asked; empty: not found
	Supported []string // the versions it speaks
}

// cniVersionAnswer is the VERSION result of the CNI spec.
type cniVersionAnswer struct {
	CNIVersion        string   `json:"cniVersion"`
	SupportedVersions []string `json:"supportedVersions"`
}

// askCNIVersions runs the plugin at path with the VERSION command and returns the spec
// versions it supports. A binary that answers anything else is no CNI plugin (or a broken
// one), and says so.
func askCNIVersions(ctx context.Context, path string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"CNI_COMMAND=VERSION", "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"` + cniFallbackVersion + `"}`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s did not answer the CNI VERSION command within 10s", path)
	}
	if err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		return nil, fmt.Errorf("%s refused the CNI VERSION command: %v %s", path, err, limitText(msg, 200))
	}
	var vi cniVersionAnswer
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&vi); err != nil {
		return nil, fmt.Errorf("%s is no CNI plugin: its answer to VERSION is not JSON (%v)", path, err)
	}
	vs := vi.SupportedVersions
	if len(vs) == 0 && vi.CNIVersion != "" {
		vs = []string{vi.CNIVersion} // spec 0.1.0 plugins name only their own
	}
	var ok []string
	for _, v := range vs {
		if _, err := parseCNIVersion(v); err == nil {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("%s names no CNI version it supports (answer %q)", path, limitText(stdout.String(), 200))
	}
	return ok, nil
}

func limitText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// parseCNIVersion reads "MAJOR.MINOR.PATCH" (each a small decimal number).
func parseCNIVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, fmt.Errorf("CNI version %q: want MAJOR.MINOR.PATCH", v)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || p != strconv.Itoa(n) {
			return out, fmt.Errorf("CNI version %q: want MAJOR.MINOR.PATCH", v)
		}
		out[i] = n
	}
	return out, nil
}

func compareCNIVersions(a, b string) int {
	x, _ := parseCNIVersion(a)
	y, _ := parseCNIVersion(b)
	return slices.Compare(x[:], y[:])
}

// highestCommonVersion is the newest version every plugin in ps supports ("" if none).
func highestCommonVersion(ps []cniPluginVersions) string {
	best := ""
	for _, v := range ps[0].Supported {
		all := true
		for _, p := range ps[1:] {
			if !slices.Contains(p.Supported, v) {
				all = false
				break
			}
		}
		if all && (best == "" || compareCNIVersions(v, best) > 0) {
			best = v
		}
	}
	return best
}

// findCNIPlugin looks for the plugin binary typ in dirs, in order; "" when none holds it.
func findCNIPlugin(typ string, dirs []string) string {
	for _, d := range dirs {
		p := filepath.Join(d, typ)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// errNoCommonVersion: the chain's plugins share no CNI version.
var errNoCommonVersion = errors.New("the plugins of the chain share no CNI version")

// negotiateCNIVersion asks weft-cni (at weftPath) and each chained plugin type (looked up in
// dirs) for their versions and returns the highest common one, with what each answered. A
// chained plugin that is not found is listed with an empty Path and left out of the choice;
// when one is missing the result is at most cniFallbackVersion, so installing that plugin
// later (a distribution's, often older) does not break the list.
func negotiateCNIVersion(ctx context.Context, weftPath string, chained []string, dirs []string) (string, []cniPluginVersions, error) {
	vs, err := askCNIVersions(ctx, weftPath)
	if err != nil {
		return "", nil, fmt.Errorf("weft-cni: %w", err)
	}
	ps := []cniPluginVersions{{Type: "weft-cni", Path: weftPath, Supported: vs}}
	missing := false
	for _, typ := range chained {
		p := cniPluginVersions{Type: typ, Path: findCNIPlugin(typ, dirs)}
		if p.Path == "" {
			missing = true
			ps = append(ps, p)
			continue
		}
		if p.Supported, err = askCNIVersions(ctx, p.Path); err != nil {
			return "", ps, fmt.Errorf("%s: %w", typ, err)
		}
		ps = append(ps, p)
	}
	var asked []cniPluginVersions
	for _, p := range ps {
		if p.Path != "" {
			asked = append(asked, p)
		}
	}
	best := highestCommonVersion(asked)
	if best == "" {
		return "", ps, fmt.Errorf("%w: %s", errNoCommonVersion, describeCNIVersions(ps))
	}
	if missing && compareCNIVersions(best, cniFallbackVersion) > 0 {
		best = cniFallbackVersion
	}
	return best, ps, nil
}

// describeCNIVersions: "weft-cni (PATH) 0.3.0…1.1.0, portmap (PATH) 0.1.0…1.0.0".
func describeCNIVersions(ps []cniPluginVersions) string {
	var parts []string
	for _, p := range ps {
		if p.Path == "" {
			parts = append(parts, p.Type+" (not found)")
			continue
		}
		lo, hi := p.Supported[0], p.Supported[0]
		for _, v := range p.Supported {
			if compareCNIVersions(v, lo) < 0 {
				lo = v
			}
			if compareCNIVersions(v, hi) > 0 {
				hi = v
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%s) %s…%s", p.Type, p.Path, lo, hi))
	}
	return strings.Join(parts, ", ")
}
