package agent_test

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/internal/cnilab"
	"github.com/weftnet/weft/internal/netlab"
)

// Real container runtimes on two weft hosts: podman (its CNI backend) and containerd (ctr's
// --cni), each given the conflist `weft cni install` writes — with Debian's portmap chained,
// the plugin that refused the 1.1.0 install used to write — changed only in where weft-cni
// keeps its reservations. Containers get addresses from their host's subnet, reach each
// other across the overlay, move a file intact, and leave no reservation or veth behind.
//
// The runtimes run in the weft host's network namespace (nsenter, not `ip netns exec`, which
// remounts /sys and hides the cgroup mounts runc needs), with their state in the test's
// directories: podman's storage, runc root, locks, temporary files and configuration (it runs
// containers from a directory, --rootfs, so no image reaches the machine's blob cache); a
// containerd daemon of its own in a private mount namespace (its shims' sockets), and ctr in
// another, where the test's directories stand in for /etc/cni/net.d and /opt/cni/bin (ctr
// reads only those) and libcni's cache is a tmpfs. What stays on the machine: the container
// namespaces' mounts in /run/netns while podman's containers run, and podman's libcni cache
// in /var/lib/cni/results (emptied by the DEL, checked).

// runtimeHost is a weft host as a container runtime sees it.
type runtimeHost struct {
	n       *node
	confDir string // holds 10-weft.conflist
	binDir  string // weft-cni, and a link to Debian's portmap
	data    string // weft-cni's reservations
}

// newRuntimeHost installs weft's CNI configuration for n with `weft cni install`, chained
// plugins looked up in Debian's /usr/lib/cni.
func newRuntimeHost(t *testing.T, n *node) *runtimeHost {
	t.Helper()
	plugins, err := cnilab.Plugins()
	if err != nil {
		t.Fatal(err)
	}
	r := &runtimeHost{n: n, confDir: filepath.Join(n.dir, "rt-net.d"), binDir: filepath.Join(n.dir, "rt-bin"), data: filepath.Join(n.dir, "rt-data")}
	out, err := n.cli("cni", "install", "--conf-dir", r.confDir, "--bin-dir", r.binDir, "--plugin-dir", debianCNIDir,
		"--plugin", filepath.Join(plugins, "weft-cni"))
	if err != nil || !strings.Contains(out, "cniVersion 1.0.0") {
		t.Fatalf("weft cni install (Debian's portmap 1.1.1 speaks up to 1.0.0): %v\n%s", err, out)
	}
	// As install's note says: ctr searches one directory.
	if err := os.Symlink(filepath.Join(debianCNIDir, "portmap"), filepath.Join(r.binDir, "portmap")); err != nil {
		t.Fatal(err)
	}
	r.editConflist(t, func(m map[string]any) {})
	return r
}

// editConflist rewrites the installed conflist through edit, always keeping the weft entry's
// dataDir in the test's directory.
func (r *runtimeHost) editConflist(t *testing.T, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(r.confDir, "10-weft.conflist")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["plugins"].([]any)[0].(map[string]any)["dataDir"] = r.data
	edit(m)
	raw, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// reservations lists the addresses weft-cni holds on this host.
func (r *runtimeHost) reservations() []string {
	des, _ := os.ReadDir(filepath.Join(r.data, "weft"))
	var out []string
	for _, de := range des {
		if _, err := netip.ParseAddr(de.Name()); err == nil {
			out = append(out, de.Name())
		}
	}
	return out
}

// veths lists the ports of the host's container bridge.
func (r *runtimeHost) veths() string {
	out, _ := r.n.host.Run("ip", "-o", "link", "show", "master", "weft-br0")
	return strings.TrimSpace(out)
}

// requireRuntimeTools fails (CI) or skips when a runtime's packages are missing, and returns a
// static busybox for the containers' root filesystem.
func requireRuntimeTools(t *testing.T, tools ...string) string {
	t.Helper()
	netlab.Require(t)
	netlab.RequireTools(t, append([]string{"nsenter", "unshare", "runc", "ping", "curl"}, tools...)...)
	if _, err := os.Stat(filepath.Join(debianCNIDir, "portmap")); err != nil {
		netlab.SkipOrFail(t, "%s/portmap missing (apt install containernetworking-plugins)", debianCNIDir)
	}
	bb := "/bin/busybox"
	f, err := elf.Open(bb)
	if err != nil {
		netlab.SkipOrFail(t, "no busybox: apt install busybox-static (%v)", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			netlab.SkipOrFail(t, "%s is dynamically linked: apt install busybox-static", bb)
		}
	}
	return bb
}

// buildRootfs writes a root filesystem of a static busybox into dir: sh, httpd, wget, ping,
// ip, sha256sum, dd, sleep.
func buildRootfs(t *testing.T, busybox, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "www"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "httpd", "wget", "ping", "ip", "sha256sum", "dd", "sleep", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\n"), 0o644)
}

// hostCmd runs argv in n's network namespace only (nsenter), with env added.
func hostCmd(ctx context.Context, n *node, env []string, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + n.host.NS, "--"}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func runOut(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// pingFrom pings dst from a container through exec (a runtime's exec command line).
func pingFrom(exec func(...string) (string, error), dst netip.Addr) error {
	out, err := exec("ping", "-c", "1", "-W", "2", dst.String())
	if err != nil {
		return err
	}
	if !strings.Contains(out, "1 packets received") {
		return fmt.Errorf("ping %s: %s", dst, out)
	}
	return nil
}

// runtimeTransfer writes size MiB of random bytes into the serving container's web root, fetches
// it from the other container across the overlay and compares the sha256 sums.
func runtimeTransfer(t *testing.T, serve, fetch func(...string) (string, error), addr netip.Addr, mib int) {
	t.Helper()
	if _, err := serve("dd", "if=/dev/urandom", "of=/www/blob", "bs=1M", fmt.Sprint("count=", mib)); err != nil {
		t.Fatal(err)
	}
	want, err := serve("sha256sum", "/www/blob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetch("wget", "-q", "-O", "/tmp/blob", fmt.Sprintf("http://%s/blob", addr)); err != nil {
		t.Fatalf("fetch across the overlay: %v", err)
	}
	got, err := fetch("sha256sum", "/tmp/blob")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Fields(got)[0] != strings.Fields(want)[0] {
		t.Fatalf("the file changed on its way: sent %s, got %s", want, got)
	}
}

// twoRuntimeHosts starts two weft agents with container networking, joined by gossip.
func twoRuntimeHosts(t *testing.T) (*runtimeHost, *runtimeHost) {
	t.Helper()
	nodes := gossipLab(t, "a", "b")
	a, b := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	cniConf := func(n *node) string {
		return fmt.Sprintf("cni:\n  enabled: true\n  subnet_env: %s\n", filepath.Join(n.dir, "subnet.env"))
	}
	a.start(gossipConfig(a, key) + cniConf(a))
	b.start(gossipConfig(b, key, a.underlay) + cniConf(b))
	eventually(t, 30*time.Second, "hosts reach each other", func() error { return allPairsPing(nodes) })
	return newRuntimeHost(t, a), newRuntimeHost(t, b)
}

// podman is one host's podman, all its state in the test's directories.
type podman struct {
	h    *runtimeHost
	dir  string
	conf string
}

func newPodman(t *testing.T, h *runtimeHost) *podman {
	t.Helper()
	p := &podman{h: h, dir: filepath.Join(h.n.dir, "podman")}
	for _, d := range []string{"root", "run", "tmp", "runc", "home"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// podman asks runc for 1048576 open files and as many processes as the host allows, which
	// a VM's limits refuse ("error setting rlimits"): ask for what these containers need.
	// (Lower than the test's own limits: lowering is always allowed.)
	var nofile, nproc unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	_ = unix.Getrlimit(unix.RLIMIT_NPROC, &nproc)
	nofile.Cur, nproc.Cur = min(nofile.Cur, 1024), min(nproc.Cur, 4096)
	nofile.Max, nproc.Max = nofile.Cur, nproc.Cur
	p.conf = filepath.Join(p.dir, "containers.conf")
	// lock_type "file": the locks live in tmp_dir, not in the machine's /dev/shm/libpod_lock
	// (shared with any other root podman there).
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
[network]
network_backend = "cni"
cni_plugin_dirs = [%q, %q]
network_config_dir = %q
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
lock_type = "file"
`, nofile.Cur, nofile.Max, nproc.Cur, nproc.Max, h.binDir, debianCNIDir, h.confDir, filepath.Join(p.dir, "events.log"))
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nor the machine's storage.conf: the flags say where and how.
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(p.dir, "root"), filepath.Join(p.dir, "run"))
	if err := os.WriteFile(filepath.Join(p.dir, "storage.conf"), []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = p.run("rm", "--all", "--force", "--time", "0")
		_, _ = p.run("system", "reset", "--force")
	})
	return p
}

// run runs podman with every piece of its state in p.dir: storage, runc's state, temporary
// files, and the machine directory podman 4 makes under $HOME/.config. (Containers run from a
// root filesystem directory, --rootfs: an imported image would also write the machine's blob
// cache, /var/lib/containers/cache.)
func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"podman", "--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--storage-driver", "vfs", "--runtime-flag", "root=" + filepath.Join(p.dir, "runc")}, args...)
	home := filepath.Join(p.dir, "home")
	env := []string{"CONTAINERS_CONF=" + p.conf, "CONTAINERS_STORAGE_CONF=" + filepath.Join(p.dir, "storage.conf"),
		"TMPDIR=" + filepath.Join(p.dir, "tmp"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	return runOut(hostCmd(ctx, p.h.n, env, argv...))
}

func (p *podman) exec(name string) func(...string) (string, error) {
	return func(argv ...string) (string, error) { return p.run(append([]string{"exec", name}, argv...)...) }
}

// addr is the container's address on the weft network, as podman reports it.
func (p *podman) addr(t *testing.T, name string) netip.Addr {
	t.Helper()
	out, err := p.run("inspect", "--format", "{{(index .NetworkSettings.Networks \"weft\").IPAddress}}", name)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("podman inspect %s: %q", name, out)
	}
	return a
}

// TestNetns_Podman: podman 4 with its CNI backend on two weft hosts. A container on each gets
// an address of its host's subnet, they ping each other and move 4 MiB intact across the
// overlay, a port mapping (-p, through the chained portmap) answers from the other host, and
// `podman rm` leaves no reservation, no veth and no namespace. With the 1.1.0 list install
// used to write, podman drops the network, as users saw.
func TestNetns_Podman(t *testing.T) {
	bb := requireRuntimeTools(t, "podman")
	a, b := twoRuntimeHosts(t)
	dir := t.TempDir()
	pa, pb := newPodman(t, a), newPodman(t, b)
	if out, err := pa.run("network", "ls", "--format", "{{.Name}} {{.Driver}}"); err != nil || !strings.Contains(out, "weft weft-cni") {
		t.Fatalf("podman network ls does not list install's network: %v\n%s", err, out)
	}
	nsBefore, _ := exec.Command("ip", "netns", "list").Output()

	for _, c := range []struct {
		p    *podman
		name string
		args []string
	}{
		{pa, "web-a", []string{"-p", "8080:80"}},
		{pb, "web-b", nil},
	} {
		root := filepath.Join(dir, c.name)
		buildRootfs(t, bb, root)
		args := append(append([]string{"run", "-d", "--name", c.name, "--network", "weft"}, c.args...),
			"--rootfs", root, "httpd", "-f", "-p", "80", "-h", "/www")
		if out, err := c.p.run(args...); err != nil {
			t.Fatalf("podman run %s: %v\n%s", c.name, err, out)
		}
	}
	addrA, addrB := pa.addr(t, "web-a"), pb.addr(t, "web-b")
	subA, subB := netip.MustParsePrefix(a.n.status().Subnet), netip.MustParsePrefix(b.n.status().Subnet)
	t.Logf("web-a %s in %s, web-b %s in %s", addrA, subA, addrB, subB)
	if !subA.Contains(addrA) || !subB.Contains(addrB) {
		t.Fatalf("addresses outside their hosts' subnets")
	}
	if got := a.reservations(); len(got) != 1 || got[0] != addrA.String() {
		t.Fatalf("a's reservations %v, want [%s]", got, addrA)
	}
	eventually(t, 10*time.Second, "web-b pings web-a", func() error { return pingFrom(pb.exec("web-b"), addrA) })
	if err := pingFrom(pa.exec("web-a"), addrB); err != nil {
		t.Fatal(err)
	}
	runtimeTransfer(t, pa.exec("web-a"), pb.exec("web-b"), addrA, 4)

	// The port mapping: host b asks host a's overlay address on the mapped port.
	if _, err := pa.exec("web-a")("dd", "if=/dev/urandom", "of=/www/mapped", "bs=64k", "count=4"); err != nil {
		t.Fatal(err)
	}
	sum, _ := pa.exec("web-a")("sha256sum", "/www/mapped")
	gwA := subA.Addr().Next()
	out, err := b.n.host.Run("curl", "-sS", "--max-time", "10", "-o", "-", fmt.Sprintf("http://%s:8080/mapped", gwA))
	if err != nil {
		t.Fatalf("port mapping %s:8080 from b: %v", gwA, err)
	}
	h := sha256.Sum256([]byte(out))
	if hex.EncodeToString(h[:]) != strings.Fields(sum)[0] {
		t.Fatalf("the mapped port answered something else (%d bytes)", len(out))
	}

	var ids []string
	for _, c := range []struct {
		p    *podman
		name string
	}{{pa, "web-a"}, {pb, "web-b"}} {
		id, err := c.p.run("inspect", "--format", "{{.Id}}", c.name)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(id))
	}
	// podman's libcni keeps each attachment's result in the machine's /var/lib/cni/results
	// (not configurable in podman 4); the DEL must remove it.
	cached := func(id string) []string {
		m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", "weft-"+id+"-*"))
		return m
	}
	for _, id := range ids {
		if len(cached(id)) != 1 {
			t.Fatalf("libcni's cache of %s: %v (looked in the wrong place?)", id, cached(id))
		}
	}
	if out, err := pa.run("rm", "--force", "--time", "0", "web-a"); err != nil {
		t.Fatalf("podman rm: %v %s", err, out)
	}
	if out, err := pb.run("rm", "--force", "--time", "0", "web-b"); err != nil {
		t.Fatalf("podman rm: %v %s", err, out)
	}
	for _, h := range []*runtimeHost{a, b} {
		if got := h.reservations(); len(got) != 0 {
			t.Fatalf("%s: reservations left after podman rm: %v", h.n.name, got)
		}
		if v := h.veths(); v != "" {
			t.Fatalf("%s: veths left after podman rm:\n%s", h.n.name, v)
		}
	}
	for _, id := range ids {
		if left := cached(id); len(left) > 0 {
			t.Fatalf("libcni's cache still holds %v after podman rm", left)
		}
	}
	if nsAfter, _ := exec.Command("ip", "netns", "list").Output(); string(nsAfter) != string(nsBefore) {
		t.Fatalf("network namespaces changed after podman rm:\nbefore\n%s\nafter\n%s", nsBefore, nsAfter)
	}

	// The list install wrote before it asked the plugins: podman 4 drops the network.
	a.editConflist(t, func(m map[string]any) { m["cniVersion"] = "1.1.0" })
	out, err = pa.run("run", "-d", "--name", "broken", "--network", "weft", "--rootfs", filepath.Join(dir, "web-a"), "sleep", "30")
	if err == nil {
		t.Fatalf("podman ran a container on a 1.1.0 list with a 1.0.0-only portmap:\n%s", out)
	}
	t.Logf("with the old 1.1.0 list: %s", strings.TrimSpace(out))
	if got := a.reservations(); len(got) != 0 {
		t.Fatalf("reservations after the refused run: %v", got)
	}
}

// ctrd is a containerd daemon of the test's own, shared by the hosts (each its own ctr
// namespace); ctr does the CNI work in the host's network namespace.
//
// The daemon runs in a private mount namespace with a tmpfs over /run: containerd 1.6 puts
// its shims' sockets in /run/containerd/s whatever its configuration says. The rest of its
// state (root, state, the opt plugin's /opt/containerd, runc's root, the I/O fifos) is in
// the test's directory.
type ctrd struct {
	dir, sock string
}

func newContainerd(t *testing.T) *ctrd {
	t.Helper()
	d := &ctrd{dir: t.TempDir()}
	d.sock = filepath.Join(d.dir, "containerd.sock")
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(d.dir, "root"), filepath.Join(d.dir, "state"), filepath.Join(d.dir, "opt"), d.sock, d.sock+".ttrpc")
	cfg := filepath.Join(d.dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(d.dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"runc", "fifo"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`set -e; mount -t tmpfs -o mode=0755 none /run; mkdir -m 0700 /run/containerd; exec containerd --config "$1"`, "containerd", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// The shims outlive the daemon by design; the test's are done by now, end any left.
		_ = exec.Command("pkill", "-f", "containerd-shim.*"+d.sock).Run()
		log.Close()
	})
	eventually(t, 10*time.Second, "containerd answers", func() error {
		_, err := runOut(exec.Command("ctr", "--address", d.sock, "version"))
		return err
	})
	return d
}

// ctr returns the command line of ctr for host h: in h's network namespace, in a private mount
// namespace where h's conflist directory is /etc/cni/net.d and its plugins /opt/cni/bin, and
// libcni's cache (/var/lib/cni: ADD writes it, the DEL of the same `ctr run` reads and removes
// it) is a tmpfs.
func (d *ctrd) ctr(ctx context.Context, h *runtimeHost, args ...string) *exec.Cmd {
	script := `set -e
if [ -d /etc/cni/net.d ]; then mount --bind "$1" /etc/cni/net.d; else mount -t tmpfs none /etc/cni; mkdir /etc/cni/net.d; mount --bind "$1" /etc/cni/net.d; fi
mount -t tmpfs none /opt; mkdir -p /opt/cni/bin; mount --bind "$2" /opt/cni/bin
if [ -d /var/lib/cni ]; then mount -t tmpfs none /var/lib/cni; else mount -t tmpfs none /var/lib; fi
shift 2
exec ctr "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, "ctr-cni", h.confDir, h.binDir,
		"--address", d.sock, "--namespace", "weft-" + h.n.name}, args...)
	return hostCmd(ctx, h.n, nil, argv...)
}

func (d *ctrd) run(h *runtimeHost, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return runOut(d.ctr(ctx, h, args...))
}

// ctrContainer is a container ctr runs in the foreground: `ctr run --rm --cni` sets its
// network up, and takes it down (CNI DEL) when the task ends. (A detached `ctr run -d` never
// does: its reservation stays until weft-cni reclaims it, see the README.)
type ctrContainer struct {
	d    *ctrd
	h    *runtimeHost
	id   string
	done chan error
	out  *strings.Builder
}

func (d *ctrd) start(t *testing.T, h *runtimeHost, id, rootfs string, argv ...string) *ctrContainer {
	t.Helper()
	c := &ctrContainer{d: d, h: h, id: id, done: make(chan error, 1), out: &strings.Builder{}}
	cmd := d.ctr(context.Background(), h, append([]string{"run", "--rm", "--cni", "--fifo-dir", filepath.Join(d.dir, "fifo"),
		"--runc-root", filepath.Join(d.dir, "runc"), "--rootfs", rootfs, id}, inBin(argv)...)...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop kills the task and waits for ctr to take the network down and exit.
func (c *ctrContainer) stop() error {
	_, _ = c.d.run(c.h, "task", "kill", "--signal", "KILL", c.id)
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(30 * time.Second):
		return errors.New("ctr run did not exit 30s after its task was killed")
	}
}

func (c *ctrContainer) exec(argv ...string) (string, error) {
	return c.d.run(c.h, append([]string{"task", "exec", "--fifo-dir", filepath.Join(c.d.dir, "fifo"), "--exec-id", fmt.Sprint("x", time.Now().UnixNano()), c.id}, inBin(argv)...)...)
}

// inBin makes a command name a path: a ctr container without an image has no PATH.
func inBin(argv []string) []string {
	if len(argv) > 0 && !strings.Contains(argv[0], "/") {
		argv = append([]string{"/bin/" + argv[0]}, argv[1:]...)
	}
	return argv
}

// addr reads the container's eth0 address from inside it.
func (c *ctrContainer) addr(t *testing.T) netip.Addr {
	t.Helper()
	var a netip.Addr
	eventually(t, 20*time.Second, c.id+" has an address", func() error {
		out, err := c.exec("ip", "-o", "-4", "addr", "show", "eth0")
		if err != nil {
			return fmt.Errorf("%v (ctr: %s)", err, c.out.String())
		}
		f := strings.Fields(out)
		for i, w := range f {
			if w == "inet" && i+1 < len(f) {
				p, err := netip.ParsePrefix(f[i+1])
				if err != nil {
					return err
				}
				a = p.Addr()
				return nil
			}
		}
		return fmt.Errorf("no address on eth0: %s", out)
	})
	return a
}

// TestNetns_Containerd: containerd 1.6 with ctr's CNI on two weft hosts. The containers get
// addresses of their hosts' subnets, ping each other and move 4 MiB intact across the overlay;
// when their tasks end ctr's DEL leaves no reservation and no veth. With the 1.1.0 list
// install used to write, ctr fails the ADD. (ctr cannot ask for port mappings; podman's test
// covers portmap.)
func TestNetns_Containerd(t *testing.T) {
	bb := requireRuntimeTools(t, "containerd", "ctr")
	a, b := twoRuntimeHosts(t)
	d := newContainerd(t)
	dir := t.TempDir()
	rootA, rootB := filepath.Join(dir, "root-a"), filepath.Join(dir, "root-b")
	buildRootfs(t, bb, rootA)
	buildRootfs(t, bb, rootB)

	ca := d.start(t, a, "web-a", rootA, "httpd", "-f", "-p", "80", "-h", "/www")
	cb := d.start(t, b, "web-b", rootB, "httpd", "-f", "-p", "80", "-h", "/www")
	addrA, addrB := ca.addr(t), cb.addr(t)
	subA, subB := netip.MustParsePrefix(a.n.status().Subnet), netip.MustParsePrefix(b.n.status().Subnet)
	t.Logf("web-a %s in %s, web-b %s in %s", addrA, subA, addrB, subB)
	if !subA.Contains(addrA) || !subB.Contains(addrB) {
		t.Fatalf("addresses outside their hosts' subnets")
	}
	if got := b.reservations(); len(got) != 1 || got[0] != addrB.String() {
		t.Fatalf("b's reservations %v, want [%s]", got, addrB)
	}
	eventually(t, 10*time.Second, "web-b pings web-a", func() error { return pingFrom(cb.exec, addrA) })
	if err := pingFrom(ca.exec, addrB); err != nil {
		t.Fatal(err)
	}
	runtimeTransfer(t, cb.exec, ca.exec, addrB, 4)

	for _, c := range []*ctrContainer{ca, cb} {
		if err := c.stop(); err != nil && !strings.Contains(err.Error(), "exit status") {
			t.Fatalf("stop %s: %v\n%s", c.id, err, c.out.String())
		}
		if strings.Contains(c.out.String(), "failed (delete)") {
			t.Fatalf("ctr's DEL of %s failed:\n%s", c.id, c.out.String())
		}
	}
	for _, h := range []*runtimeHost{a, b} {
		if got := h.reservations(); len(got) != 0 {
			t.Fatalf("%s: reservations left after the tasks ended: %v", h.n.name, got)
		}
		if v := h.veths(); v != "" {
			t.Fatalf("%s: veths left after the tasks ended:\n%s", h.n.name, v)
		}
	}

	// The list install wrote before it asked the plugins: ctr's libcni cannot read the 1.1.0
	// result, and portmap refuses the version.
	a.editConflist(t, func(m map[string]any) { m["cniVersion"] = "1.1.0" })
	bad := d.start(t, a, "broken", rootA, "sleep", "30")
	select {
	case err := <-bad.done:
		bad.done <- err
		if err == nil {
			t.Fatalf("ctr ran a container on a 1.1.0 list:\n%s", bad.out.String())
		}
		t.Logf("with the old 1.1.0 list: %s", strings.TrimSpace(bad.out.String()))
	case <-time.After(30 * time.Second):
		t.Fatalf("ctr run on a 1.1.0 list neither failed nor ended:\n%s", bad.out.String())
	}
	_, _ = d.run(a, "task", "kill", "--signal", "KILL", "broken")
	_, _ = d.run(a, "task", "rm", "broken")
	_, _ = d.run(a, "container", "rm", "broken")
	// The container never ran; its namespace went, and the veth with it. weft-cni's ADD had
	// succeeded before libcni refused its result, and the DEL stopped at portmap: that
	// reservation waits for weft-cni's reclaim (a full subnet frees reservations without a veth).
	if v := a.veths(); v != "" {
		t.Fatalf("veth left after the refused run:\n%s", v)
	}
	t.Logf("reservations after the refused run: %v", a.reservations())
}
