package agent_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/netlab"
)

// The end-to-end tests run real `weft agent` processes in network namespaces. The test binary
// doubles as a small TCP source and sink (helperMain), run inside a namespace with
// `ip netns exec NS /proc/self/exe`, so the transfers need no extra tools.

const helperEnv = "WEFT_E2E_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		var args []string
		for i, a := range os.Args {
			if a == mode {
				args = os.Args[i+1:]
			}
		}
		if err := helperMain(mode, args); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The agent package starts goroutines (API server, gossip glue): none may outlive a test.
	goleak.VerifyTestMain(m)
}

// helperMain: "sink ADDR COUNTFILE" accepts one connection and prints "BYTES SHA256";
// "source ADDR SIZE" sends SIZE deterministic bytes and prints "BYTES SHA256".
func helperMain(mode string, args []string) error {
	switch mode {
	case "sink":
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return err
		}
		fmt.Printf("%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
		return nil
	case "source":
		size, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return err
		}
		var c net.Conn
		for i := 0; i < 50; i++ { // the sink may still be starting
			if c, err = net.DialTimeout("tcp", args[0], 2*time.Second); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
		h := sha256.New()
		src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
		n, err := io.Copy(io.MultiWriter(c, h), src)
		if err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return err
		}
		fmt.Printf("%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
		return nil
	case "hold-udp": // binds ADDR (UDP) and holds it until killed
		pc, err := net.ListenPacket("udp", args[0])
		if err != nil {
			return err
		}
		defer pc.Close()
		fmt.Println("holding")
		select {}
	case "inject":
		return injectFrames(args)
	case "hostile": // trust_netns_test.go
		return hostileMain(args)
	case "get":
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(args[0])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	}
	if f, ok := extraHelpers[mode]; ok {
		return f(args)
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// extraHelpers are helper modes other test files add in their init.
var extraHelpers = map[string]func(args []string) error{}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// weftBin is $WEFT_BIN (make test-netns builds it) or a binary built once for this run.
func weftBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("WEFT_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weft-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "weft")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/weftnet/weft/cmd/weft").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// node is one host of an end-to-end lab running a weft agent.
type node struct {
	t        *testing.T
	name     string
	host     *netlab.Host
	dir      string
	underlay string // underlay IP
	sock     string
	priv     crypto.PrivateKey
	cmd      *exec.Cmd
	done     chan error
	logPath  string
}

func newNode(t *testing.T, h *netlab.Host, underlay string) *node {
	t.Helper()
	dir := t.TempDir()
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := crypto.SavePrivateKeyFile(filepath.Join(dir, "state", "private.key"), priv); err != nil {
		t.Fatal(err)
	}
	return &node{t: t, name: h.Name, host: h, dir: dir, underlay: underlay, sock: filepath.Join(dir, "weft.sock"), priv: priv, logPath: filepath.Join(dir, "agent.log")}
}

func (n *node) pub() string { return n.priv.Public().String() }

// launch starts cmd as n's agent, its output appended to n's log; the test's cleanup kills it.
func (n *node) launch(cmd *exec.Cmd) {
	t := n.t
	t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	n.cmd = cmd
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { n.kill() })
}

// publicBinDir makes a directory any user may enter (removed when t ends) holding a copy of
// the weft binary any user may run, and returns the directory and the copy's path.
func publicBinDir(t *testing.T, pattern string) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "weft")
	data, err := os.ReadFile(weftBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// allAlive is nil once every node of nodes sees each of names alive, at an address that
// starts with addrPrefix.
func allAlive(nodes []*node, addrPrefix string, names ...string) error {
	for _, n := range nodes {
		ms := n.members()
		for _, name := range names {
			if m := ms[name]; m.Status != "alive" || !strings.HasPrefix(m.Addr, addrPrefix) {
				return fmt.Errorf("%s sees %s as %+v", n.name, name, m)
			}
		}
	}
	return nil
}

// staticPeerConf is the config of a node with no gossip and no DNS, routing subnet and
// with one static peer whose allowed_ips are allowed.
func staticPeerConf(subnet string, peer *node, allowed string) string {
	return fmt.Sprintf(`gossip: {disabled: true}
dns: {disabled: true}
subnet: %s
peers:
  - public_key: %s
    endpoint: %s:51820
    allowed_ips: [%s]
`, subnet, peer.pub(), peer.underlay, allowed)
}

// start runs `weft agent -c CONFIG` inside the node's namespace and waits for its API.
func (n *node) start(config string) {
	n.t.Helper()
	n.startEnv(config)
}

// startEnv is start with env added to the agent's environment.
func (n *node) startEnv(config string, env ...string) {
	t := n.t
	t.Helper()
	cfgPath := filepath.Join(n.dir, "weft.yaml")
	full := fmt.Sprintf("name: %s\nstate_dir: %s\ncontrol_socket: %s\n%s", n.name, filepath.Join(n.dir, "state"), n.sock, withTrust(config))
	if err := os.WriteFile(cfgPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := n.host.Command(context.Background(), weftBin(t), "agent", "-c", cfgPath)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	n.launch(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := api.NewClient(n.sock).WaitReady(ctx, 15*time.Second); err != nil {
		t.Fatalf("%s: agent not ready: %v\n%s", n.name, err, n.logs())
	}
}

// withTrust adds `trust: shared-key` to a config that does not choose its trust: the labs
// that predate the CA default run without certificates (their own tests say so).
func withTrust(config string) string {
	if strings.Contains(config, "trust:") {
		return config
	}
	return "trust: shared-key\n" + config
}

// kill sends SIGKILL (as a crash would) and waits for the process.
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
	}
	n.cmd = nil
}

// wait waits for the agent to exit by itself (after leave).
func (n *node) wait(timeout time.Duration) error {
	select {
	case err := <-n.done:
		n.cmd = nil
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%s: agent still running after %s", n.name, timeout)
	}
}

func (n *node) logs() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// cli runs the weft CLI against this node's agent.
func (n *node) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--socket", n.sock}, args...)
	out, err := exec.CommandContext(ctx, weftBin(n.t), full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("weft %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) peers() []api.Peer {
	n.t.Helper()
	out, err := n.cli("peers", "--json")
	if err != nil {
		n.t.Fatal(err)
	}
	var ps []api.Peer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		n.t.Fatalf("peers --json: %v: %s", err, out)
	}
	return ps
}

// ping sends count pings to dst from inside the node and reports whether all came back.
func (n *node) ping(dst string, count int) error {
	out, err := n.host.Run("ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", dst)
	if err != nil {
		return err
	}
	if !strings.Contains(out, fmt.Sprintf("%d received", count)) {
		return fmt.Errorf("ping %s: %s", dst, out)
	}
	return nil
}

// eventually polls f until it returns nil or the deadline passes; it returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, timeout, err)
	return 0
}

// transfer sends size bytes over TCP from src to dst:port through the overlay and checks
// that the sha256 on both sides matches. It returns the throughput in bit/s.
func transfer(t *testing.T, src, dst *node, dstAddr string, port int, size int64) float64 {
	t.Helper()
	return transferWithin(t, src, dst, dstAddr, port, size, 3*time.Minute)
}

// transferWithin is transfer that fails once timeout has passed (a stalled transfer).
func transferWithin(t *testing.T, src, dst *node, dstAddr string, port int, size int64, timeout time.Duration) float64 {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr := net.JoinHostPort(dstAddr, strconv.Itoa(port))
	sink := dst.host.Command(ctx, self, "-test.run=^$", "sink", addr)
	sink.Env = append(os.Environ(), helperEnv+"=sink")
	sinkOut, err := sink.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sink.Stderr = os.Stderr
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sink.Process.Kill(); _ = sink.Wait() }()
	rd := bufio.NewReader(sinkOut)
	if line, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(line) != "listening" {
		t.Fatalf("sink did not start: %q %v", line, err)
	}
	start := time.Now()
	source := src.host.Command(ctx, self, "-test.run=^$", "source", addr, strconv.FormatInt(size, 10))
	source.Env = append(os.Environ(), helperEnv+"=source")
	srcOut, err := source.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("transfer of %d bytes to %s stalled: not done within %s", size, addr, timeout)
	}
	if err != nil {
		t.Fatalf("source: %v: %s", err, srcOut)
	}
	recvLine, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("sink: %v", err)
	}
	elapsed := time.Since(start)
	sent, got := strings.Fields(string(srcOut)), strings.Fields(recvLine)
	if len(sent) != 2 || len(got) != 2 {
		t.Fatalf("helper output: source %q sink %q", srcOut, recvLine)
	}
	if sent[0] != strconv.FormatInt(size, 10) || got[0] != sent[0] || got[1] != sent[1] {
		t.Fatalf("transfer mismatch: sent %v, received %v", sent, got)
	}
	return float64(size*8) / elapsed.Seconds()
}

// httpGet fetches url from inside the node's namespace (the test binary as helper).
func (n *node) httpGet(url string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := n.host.Command(ctx, self, "-test.run=^$", "get", url)
	cmd.Env = append(os.Environ(), helperEnv+"=get")
	out, err := cmd.Output()
	return string(out), err
}
