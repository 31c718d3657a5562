// Package netlab builds small labs of hosts in Linux network namespaces joined by veth
// pairs, for end-to-end tests and for the benchmark harness. It imports nothing of weft, so
// tests of any package may use it.
//
// Every namespace and link a Lab creates carries the Lab's unique id, lives only inside the
// Lab's namespaces (the host's own interfaces and routes are never touched) and is removed by
// Close, which also kills whatever still runs inside them.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// T is the part of testing.TB the test helpers (Require, NewT, PairT, ...) use. It is an
// interface so that this package, which the benchmark binary links, does not import testing.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// testingShort is testing.Short() read from the test binary's -test.short flag, without
// importing testing (false outside a test binary).
func testingShort() bool {
	f := flag.Lookup("test.short")
	return f != nil && f.Value.String() == "true"
}

// Lab is a set of network namespaces created together and removed together.
type Lab struct {
	id string

	mu    sync.Mutex
	hosts []*Host
	links int
}

// Host is one network namespace of a Lab.
type Host struct {
	lab  *Lab
	Name string // the short name given to AddHost
	NS   string // the namespace name, unique per lab
}

// Available reports why labs cannot be built on this machine, or nil when they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces and veth pairs): run it with sudo or as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs the ip command (apt-get install iproute2)")
	}
	return nil
}

// Require skips t with a clear message when network-namespace tests cannot or should not
// run: under -short, without root, or without iproute2. In CI (CI set in the environment)
// a missing prerequisite fails the test instead: CI installs everything, so a skip there
// would hide a check reported as passing.
func Require(t T) {
	t.Helper()
	if testingShort() {
		t.Skipf("%s", "network-namespace test skipped under -short (run `make test-netns` as root)")
	}
	if err := Available(); err != nil {
		SkipOrFail(t, "network-namespace test skipped: %v", err)
	}
}

// RequireTools skips t when one of the named commands is missing, naming the package to
// install (fails in CI, like Require).
func RequireTools(t T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "%s not installed (the CI script installs it; apt-get install %s)", tool, aptName(tool))
		}
	}
}

// SkipOrFail skips t outside CI and fails it in CI, where every prerequisite is installed.
func SkipOrFail(t T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

func aptName(tool string) string {
	switch tool {
	case "dig":
		return "dnsutils"
	case "ip":
		return "iproute2"
	case "ping":
		return "iputils-ping"
	case "nft":
		return "nftables"
	case "ctr":
		return "containerd"
	case "nsenter", "unshare":
		return "util-linux"
	}
	return tool
}

// New creates an empty lab with a fresh id. Call Close when done.
func New() (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &Lab{id: hex.EncodeToString(b[:])}, nil
}

// NewT creates a lab for a test and removes it in t.Cleanup. It skips like Require.
func NewT(t T) *Lab {
	t.Helper()
	Require(t)
	l, err := New()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Logf("netlab cleanup: %v", err)
		}
	})
	return l
}

// ID is the lab's unique id, part of every name it creates.
func (l *Lab) ID() string { return l.id }

// AddHost creates a namespace with its loopback up.
func (l *Lab) AddHost(name string) (*Host, error) {
	h := &Host{lab: l, Name: name, NS: "weft-" + l.id + "-" + name}
	if _, err := run("ip", "netns", "add", h.NS); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if _, err := h.Run("ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return h, nil
}

// Link joins a and b with a veth pair whose ends are named ifA in a and ifB in b (at most
// 15 bytes each, unique within each host), gives them the CIDR addresses (e.g. "192.168.77.1/24")
// and brings them up. An empty address leaves that end unaddressed.
func (l *Lab) Link(a *Host, ifA, addrA string, b *Host, ifB, addrB string) error {
	l.mu.Lock()
	l.links++
	n := l.links
	l.mu.Unlock()
	// Created in a with temporary unique names, so nothing ever appears in the host's namespace.
	tmpA, tmpB := fmt.Sprintf("va%s%d", l.id, n), fmt.Sprintf("vb%s%d", l.id, n)
	if _, err := a.Run("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "link", "set", tmpB, "netns", b.NS},
		{"ip", "link", "set", tmpA, "name", ifA},
	}
	for _, s := range steps {
		if _, err := a.Run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := b.Run("ip", "link", "set", tmpB, "name", ifB); err != nil {
		return err
	}
	for _, side := range []struct {
		h        *Host
		ifc, adr string
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if side.adr != "" {
			if _, err := side.h.Run("ip", "addr", "add", side.adr, "dev", side.ifc); err != nil {
				return err
			}
		}
		if _, err := side.h.Run("ip", "link", "set", side.ifc, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Command returns a command that runs inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", h.NS, name}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Run runs a command inside the namespace (for at most one minute) and returns its combined
// output; the error includes that output.
func (h *Host) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.RunContext(ctx, name, args...)
}

// RunContext is Run with the caller's context.
func (h *Host) RunContext(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := h.Command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("[%s] %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Close kills every process left in the lab's namespaces and deletes them.
func (l *Lab) Close() error {
	l.mu.Lock()
	hosts := l.hosts
	l.hosts = nil
	l.mu.Unlock()
	var errs []error
	for _, h := range hosts {
		if out, err := run("ip", "netns", "pids", h.NS); err == nil {
			for _, f := range strings.Fields(out) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, h := range hosts {
		var err error
		for i := 0; i < 20; i++ { // a namespace with dying processes may take a moment
			if _, err = run("ip", "netns", "del", h.NS); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Switch joins hosts on one Ethernet segment: a bridge in its own namespace (named "sw"),
// one veth pair per host whose host end is named ifName and gets the matching address of
// addrs (CIDR notation). It returns the switch host.
func (l *Lab) Switch(ifName string, hosts []*Host, addrs []string) (*Host, error) {
	if len(hosts) != len(addrs) {
		return nil, fmt.Errorf("netlab: %d hosts but %d addresses", len(hosts), len(addrs))
	}
	sw, err := l.AddHost("sw")
	if err != nil {
		return nil, err
	}
	if _, err := sw.Run("ip", "link", "add", "br0", "type", "bridge"); err != nil {
		return nil, err
	}
	if _, err := sw.Run("ip", "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	for i, h := range hosts {
		port := fmt.Sprintf("p%d", i)
		if err := l.Link(h, ifName, addrs[i], sw, port, ""); err != nil {
			return nil, err
		}
		if _, err := sw.Run("ip", "link", "set", port, "master", "br0"); err != nil {
			return nil, err
		}
	}
	return sw, nil
}

// Pair builds a lab of two hosts, "a" and "b", joined by a veth whose ends are both named
// ifName and carry addrA and addrB (CIDR notation). On error nothing is left behind; otherwise
// the caller closes the lab.
func Pair(ifName, addrA, addrB string) (l *Lab, a, b *Host, err error) {
	if l, err = New(); err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()
	if a, err = l.AddHost("a"); err != nil {
		return nil, nil, nil, err
	}
	if b, err = l.AddHost("b"); err != nil {
		return nil, nil, nil, err
	}
	if err = l.Link(a, ifName, addrA, b, ifName, addrB); err != nil {
		return nil, nil, nil, err
	}
	return l, a, b, nil
}

// PairT is Pair for a test: it skips like Require, fails t on error and removes the lab in
// t.Cleanup.
func PairT(t T, ifName, addrA, addrB string) (a, b *Host) {
	t.Helper()
	Require(t)
	l, a, b, err := Pair(ifName, addrA, addrB)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Logf("netlab cleanup: %v", err)
		}
	})
	return a, b
}
