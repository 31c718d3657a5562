package agent_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/netproxy"
)

// inNetns runs f on a thread moved into h's namespace: sockets f creates stay in it.
func inNetns(t *testing.T, h *node, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.GetFromName(h.host.NS)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	f()
	if err := netns.Set(orig); err != nil {
		return // the thread stays locked and dies with the goroutine
	}
	runtime.UnlockOSThread()
}

// serveHTTP serves "hello from NAME" on addr inside h's namespace until the test ends.
func serveHTTP(t *testing.T, h *node, addr, text string) {
	t.Helper()
	var ln net.Listener
	var err error
	inNetns(t, h, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, text) })}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// serveUDPEcho answers "echo:"+datagram on addr inside h's namespace.
func serveUDPEcho(t *testing.T, h *node, addr string) {
	t.Helper()
	var pc net.PacketConn
	var err error
	inNetns(t, h, func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	agent.ServeUDPEcho(t, pc)
}

// rootlessNode prepares a node whose agent runs as nobody: its directory (state, socket,
// log, and a copy of the binary, since nobody may not read the tester's paths) is owned
// by nobody and nothing else is.
func rootlessNode(t *testing.T, n *node) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		netlab.SkipOrFail(t, "no user nobody to run the rootless agent as: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	dir, _ := publicBinDir(t, "weft-rootless-")
	// No state_dir or control_socket in its config: the defaults for a user must find them
	// (XDG_STATE_HOME/weft, XDG_RUNTIME_DIR/weft/weft.sock), for the agent and the CLI.
	state := filepath.Join(dir, "xdg-state", "weft")
	if err := crypto.SavePrivateKeyFile(filepath.Join(state, "private.key"), n.priv); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Dir(state), state, filepath.Join(state, "private.key"), filepath.Join(dir, "run")} {
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	n.dir, n.sock, n.logPath = dir, filepath.Join(dir, "run", "weft", "weft.sock"), filepath.Join(dir, "agent.log")
	return uid, gid
}

// userEnv is the environment of n's rootless processes.
func (n *node) userEnv() []string {
	return []string{"HOME=" + n.dir, "PATH=/usr/bin:/bin", "XDG_STATE_HOME=" + filepath.Join(n.dir, "xdg-state"),
		"XDG_RUNTIME_DIR=" + filepath.Join(n.dir, "run")}
}

// asUser is `setpriv` to uid:gid with no capabilities, then argv, inside n's namespace.
func (n *node) asUser(ctx context.Context, uid, gid int, argv ...string) *exec.Cmd {
	args := append([]string{"--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--clear-groups", "--inh-caps=-all", "--"}, argv...)
	cmd := n.host.Command(ctx, "setpriv", args...)
	cmd.Env = n.userEnv()
	return cmd
}

// startAs runs the agent of n like node.start, but as uid:gid with no capabilities.
func (n *node) startAs(uid, gid int, config string) {
	t := n.t
	t.Helper()
	cfgPath := filepath.Join(n.dir, "weft.yaml")
	full := fmt.Sprintf("name: %s\n%s", n.name, withTrust(config))
	if err := os.WriteFile(cfgPath, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	// ip netns exec needs root; the agent itself runs as uid:gid (setpriv drops every
	// capability with the uid change), so it cannot configure a TUN even if it tried.
	n.launch(n.asUser(context.Background(), uid, gid, filepath.Join(n.dir, "weft"), "agent", "-c", cfgPath))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := n.cli("status"); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: rootless agent not ready\n%s", n.name, n.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// procStatus returns the fields of /proc/PID/status of n's agent.
func (n *node) procStatus(t *testing.T) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// socksUDPExchange sends payload to dst through the SOCKS5 proxy's UDP ASSOCIATE (from
// inside h's namespace) and returns the reply's header address and payload.
func socksUDPExchange(t *testing.T, h *node, proxy string, dst netproxy.Addr, payload string) (netproxy.Addr, string, error) {
	var c net.Conn
	var uc *net.UDPConn
	var err error
	inNetns(t, h, func() {
		if c, err = net.DialTimeout("tcp", proxy, 5*time.Second); err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// no-auth greeting, then UDP ASSOCIATE from an unknown source (0.0.0.0:0)
		if _, err = c.Write([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
			return
		}
		rep := make([]byte, 2+10)
		if _, err = io.ReadFull(c, rep); err != nil {
			return
		}
		if rep[1] != 0 || rep[3] != 0 {
			err = fmt.Errorf("socks5 replies %v", rep)
			return
		}
		relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[6:10])), binary.BigEndian.Uint16(rep[10:]))
		uc, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relay))
	})
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		return netproxy.Addr{}, "", err
	}
	defer uc.Close()
	buf := make([]byte, 2048)
	for i := 0; i < 10; i++ {
		if _, err := uc.Write(append(netproxy.AppendUDPHeader(nil, dst), payload...)); err != nil {
			return netproxy.Addr{}, "", err
		}
		_ = uc.SetReadDeadline(time.Now().Add(time.Second))
		n, err := uc.Read(buf)
		if err != nil {
			continue
		}
		hd, p, err := netproxy.ParseUDPHeader(buf[:n])
		return hd.Addr, string(p), err
	}
	return netproxy.Addr{}, "", fmt.Errorf("no reply through UDP ASSOCIATE")
}

// TestNetns_NetstackRootless: a rootless agent (user nobody, no capabilities, netstack
// instead of a TUN) joins two TUN agents by gossip and reaches and serves the overlay through
// its proxies, forwards and exposes.
func TestNetns_NetstackRootless(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "r")
	a, b, r := nodes[0], nodes[1], nodes[2]
	netlab.RequireTools(t, "curl", "setpriv", "dig")
	uid, gid := rootlessNode(t, r)
	key := gossipKeyB64(t)
	a.start(gossipConfig(a, key))
	b.start(gossipConfig(b, key, a.underlay))
	r.startAs(uid, gid, fmt.Sprintf(`netstack: true
gossip: {bind: %s:7946, key: %s, fast: true, join: [%s]}
netstack_proxy: {socks5: 127.0.0.1:1080, http: 127.0.0.1:3128}
forward:
  - {listen: 127.0.0.1:15000, to: web.service.weft:8000}
expose:
  - {port: 8080, to: 127.0.0.1:18080}
`, r.underlay, key, a.underlay))

	// The agent really is unprivileged and made no device.
	ps := r.procStatus(t)
	if f := strings.Fields(ps["Uid"]); len(f) == 0 || f[0] != strconv.Itoa(uid) || ps["CapEff"] != "0000000000000000" {
		t.Fatalf("rootless agent runs as Uid %q CapEff %q", ps["Uid"], ps["CapEff"])
	}
	if out, err := r.host.Run("ip", "-o", "link"); err != nil || strings.Contains(out, "weft0") {
		t.Fatalf("a link appeared in the rootless namespace: %v %s", err, out)
	}
	st := r.status()
	if st.Interface != "netstack" {
		t.Fatalf("status interface %q, want netstack", st.Interface)
	}
	// The CLI, run as the same user without --socket, finds the agent's default socket.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := r.asUser(ctx, uid, gid, filepath.Join(r.dir, "weft"), "status").CombinedOutput(); err != nil || !strings.Contains(string(out), "netstack") {
		t.Fatalf("weft status as the user, default socket: %v %s", err, out)
	}
	rAddr, bAddr := st.Address, b.status().Address
	eventually(t, 30*time.Second, "all three are members everywhere", func() error {
		for _, n := range nodes {
			if m := n.members(); len(m) != 3 {
				return fmt.Errorf("%s sees %d members", n.name, len(m))
			}
		}
		return nil
	})

	// web on b (TCP 8000), a UDP echo on b (9999).
	serveHTTP(t, b, "0.0.0.0:8000", "hello from b")
	serveUDPEcho(t, b, "0.0.0.0:9999")
	if out, err := b.cli("register", "web", "--port", "8000"); err != nil {
		t.Fatalf("register web: %v %s", err, out)
	}

	t.Run("curl --socks5-hostname by DNS name", func(t *testing.T) {
		eventually(t, 30*time.Second, "curl through socks5", func() error {
			out, err := r.host.Run("curl", "-sS", "--max-time", "5", "--socks5-hostname", "127.0.0.1:1080", "http://web.service.weft:8000/")
			if err != nil {
				return err
			}
			if out != "hello from b" {
				return fmt.Errorf("curl: %q", out)
			}
			return nil
		})
		out, err := r.host.Run("curl", "-sS", "--max-time", "5", "--proxy", "http://127.0.0.1:3128", "-p", "http://web.service.weft:8000/")
		if err != nil || out != "hello from b" {
			t.Fatalf("curl through the HTTP CONNECT proxy: %v %q", err, out)
		}
		// A name outside the overlay is refused by the proxy, not looked up.
		if out, err := r.host.Run("curl", "-sS", "--max-time", "5", "--socks5-hostname", "127.0.0.1:1080", "http://example.com/"); err == nil {
			t.Fatalf("a destination outside the overlay was proxied: %q", out)
		}
	})

	t.Run("UDP through SOCKS5 UDP ASSOCIATE", func(t *testing.T) {
		dst := netproxy.Addr{Name: "b.node.weft", Port: 9999}
		from, got, err := socksUDPExchange(t, r, "127.0.0.1:1080", dst, "over socks")
		if err != nil || got != "echo:over socks" || from != dst {
			t.Fatalf("udp associate: from %v %q %v", from, got, err)
		}
	})

	t.Run("local forward to a TCP service on another host", func(t *testing.T) {
		out, err := r.host.Run("curl", "-sS", "--max-time", "5", "http://127.0.0.1:15000/")
		if err != nil || out != "hello from b" {
			t.Fatalf("forward: %v %q", err, out)
		}
	})

	t.Run("exposed local port reached from a TUN host, found by DNS", func(t *testing.T) {
		serveHTTP(t, r, "127.0.0.1:18080", "hello from rootless r")
		if out, err := r.cli("register", "rweb", "--port", "8080", "--check", "tcp", "--target", "127.0.0.1:18080", "--interval", "500ms"); err != nil {
			t.Fatalf("register rweb: %v %s", err, out)
		}
		eventually(t, 30*time.Second, "a resolves rweb to r's overlay address", expectAnswers(a, "rweb.service.weft", "A", rAddr))
		eventually(t, 20*time.Second, "a fetches r's exposed port", func() error {
			out, err := a.httpGet("http://" + rAddr + ":8080/")
			if err != nil || out != "hello from rootless r" {
				return fmt.Errorf("%v %q", err, out)
			}
			return nil
		})
		// r's own loopback DNS is on the user's default port (8600: 53 is privileged).
		out, err := r.host.Run("dig", "@127.0.0.1", "-p", "8600", "+short", "+time=2", "+tries=2", "web.service.weft", "A")
		if err != nil || strings.TrimSpace(out) != bAddr {
			t.Fatalf("dig @127.0.0.1 -p 8600 on r: %v %q", err, out)
		}
		// r's DNS inside the netstack answers the other hosts too.
		out, err = a.host.Run("dig", "@"+rAddr, "+short", "+time=2", "+tries=2", "web.service.weft", "A")
		if err != nil || strings.TrimSpace(out) != bAddr {
			t.Fatalf("dig @%s (r's netstack DNS): %v %q", rAddr, err, out)
		}
	})

	// The state r wrote belongs to nobody.
	var fst syscall.Stat_t
	if err := syscall.Stat(filepath.Join(r.dir, "xdg-state", "weft", "services.json"), &fst); err != nil || int(fst.Uid) != uid {
		t.Fatalf("services.json: %v uid %d", err, fst.Uid)
	}
}
