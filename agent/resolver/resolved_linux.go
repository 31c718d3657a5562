package resolver

// resolvectl is used rather than D-Bus directly: it is resolved's own client, present
// wherever resolved is, and speaks the same D-Bus calls (SetLinkDNS, SetLinkDomains,
// RevertLink). It takes the link by name and resolves it in the caller's network
// namespace, while resolved lives in the host's: an agent in another namespace than PID 1
// (a lab, a container) would configure some other link of the host, so it does not try.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/weftnet/weft/agent/config"
)

// resolvedRunDir exists while systemd-resolved runs.
const resolvedRunDir = "/run/systemd/resolve"

// Resolved configures systemd-resolved; its fields are seams for tests. The zero value (Run
// nil) stands for the system's (System).
type Resolved struct {
	// RunDir exists while resolved runs.
	RunDir string
	// Run runs resolvectl with args.
	Run func(ctx context.Context, args ...string) ([]byte, error)
	// SameNetns reports whether this process shares PID 1's network namespace.
	SameNetns func() bool
	// NeedBinary: resolvectl must be on PATH.
	NeedBinary bool
}

// System is the host's systemd-resolved, through the resolvectl on PATH.
func System() Resolved {
	return Resolved{
		RunDir:     resolvedRunDir,
		NeedBinary: true,
		Run: func(ctx context.Context, args ...string) ([]byte, error) {
			path, err := exec.LookPath("resolvectl")
			if err != nil {
				return nil, err
			}
			return exec.CommandContext(ctx, path, args...).CombinedOutput()
		},
		SameNetns: func() bool {
			self, err1 := os.Readlink("/proc/self/ns/net")
			init, err2 := os.Readlink("/proc/1/ns/net")
			return err1 == nil && err2 == nil && self == init
		},
	}
}

// ErrNoResolved: systemd-resolved is not running (or cannot be configured from here).
var ErrNoResolved = errors.New("systemd-resolved is not running")

// Available says whether resolved can be configured, and if not, why.
func (r Resolved) Available() error {
	if st, err := os.Stat(r.RunDir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w (no %s)", ErrNoResolved, r.RunDir)
	}
	if r.SameNetns != nil && !r.SameNetns() {
		return fmt.Errorf("%w in this network namespace (the agent is not in the host's)", ErrNoResolved)
	}
	if _, err := exec.LookPath("resolvectl"); err != nil && r.NeedBinary {
		return fmt.Errorf("%w: no resolvectl", ErrNoResolved)
	}
	return nil
}

// serverArg renders addr as resolvectl takes it: IP, or IP:PORT / [IP]:PORT off 53.
func serverArg(addr netip.AddrPort) string {
	if addr.Port() == 53 {
		return addr.Addr().String()
	}
	return addr.String()
}

// Configure points the link's DNS at server for ~domain; the returned func reverts it.
func (r Resolved) Configure(iface string, server netip.AddrPort, domain string) (func() error, error) {
	if err := r.Available(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dom := "~" + strings.TrimSuffix(domain, ".")
	steps := [][]string{
		{"dns", iface, serverArg(server)},
		{"domain", iface, dom},
	}
	revert := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := r.Run(ctx, "revert", iface); err != nil {
			return fmt.Errorf("resolvectl revert %s: %w: %s", iface, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, args := range steps {
		if out, err := r.Run(ctx, args...); err != nil {
			_ = revert()
			return nil, fmt.Errorf("resolvectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// Only ~domain goes to the agent, never the host's other names (older resolved lacks
	// default-route; the routing-only domain already keeps it off the default route there).
	_, _ = r.Run(ctx, "default-route", iface, "false")
	return revert, nil
}

// pickServer picks the DNS address resolved should use: the overlay one (on the link
// itself), else a loopback one.
func pickServer(addrs []netip.AddrPort, overlay netip.Addr) (netip.AddrPort, bool) {
	for _, a := range addrs {
		if a.Addr() == overlay {
			return a, true
		}
	}
	for _, a := range addrs {
		if a.Addr().IsLoopback() {
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// Deps is what pointing the host's resolver at the agent needs.
type Deps struct {
	// Resolved is the resolver to configure; zero: the system's.
	Resolved Resolved
	// Interface is the link resolved sends the domain to; Domain is dns.domain.
	Interface string
	Domain    string
	// Problem records a condition `weft status` shows; Log is the agent's logger.
	Problem func(string)
	Log     *slog.Logger
}

// Point configures resolved, after DNS started on addrs, to send ~Domain to one of them
// (the overlay address, else a loopback one). It returns what reverts that, or nil when
// resolved was not configured; it says why in the log (and, on a failure, in Problem).
func Point(d Deps, addrs []netip.AddrPort, overlay netip.Addr) (revert func()) {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	server, ok := pickServer(addrs, overlay)
	if !ok {
		log.Warn("host resolver not configured: no DNS listen address on the overlay or loopback")
		return nil
	}
	r := d.Resolved
	if r.Run == nil {
		r = System()
	}
	undo, err := r.Configure(d.Interface, server, d.Domain)
	if errors.Is(err, ErrNoResolved) {
		log.Warn("host resolver not configured: "+err.Error()+"; run `weft dns setup` for the line to add to the host's resolver",
			"dns", server.String())
		return nil
	}
	if err != nil {
		log.Error("host resolver not configured", "err", err)
		if d.Problem != nil {
			d.Problem("systemd-resolved not configured: " + err.Error())
		}
		return nil
	}
	log.Info("systemd-resolved sends ~"+strings.TrimSuffix(d.Domain, ".")+" to the agent", "interface", d.Interface, "dns", server.String())
	return func() {
		if err := undo(); err != nil {
			log.Warn("reverting systemd-resolved", "err", err)
		}
	}
}

// Setup is what `weft dns setup` prints: how to make the host's resolver (r) ask the agent
// for the names of cfg's DNS domain.
func Setup(cfg config.Config, r Resolved) string {
	var b strings.Builder
	dom := strings.TrimSuffix(cfg.DNS.Domain, ".")
	if cfg.DNS.Disabled || len(cfg.DNS.Listen) == 0 {
		return "DNS is disabled in this configuration (dns.disabled or an empty dns.listen): nothing to set up.\n"
	}
	var loop netip.AddrPort
	for _, l := range cfg.DNS.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil && ap.Addr().IsLoopback() {
			loop = ap
			break
		}
	}
	if r.Available() == nil && !cfg.DNS.ResolvedDisabled {
		fmt.Fprintf(&b, "systemd-resolved is running: the agent configures it itself at start\n")
		fmt.Fprintf(&b, "(resolvectl dns %s ADDRESS; resolvectl domain %s ~%s) and reverts it on exit.\n", cfg.Interface, cfg.Interface, dom)
		fmt.Fprintf(&b, "Check with: resolvectl status %s\n", cfg.Interface)
		return b.String()
	}
	if !loop.IsValid() {
		fmt.Fprintf(&b, "dns.listen %v has no loopback address: add 127.0.0.1:53 to it so this host's resolver can ask the agent.\n", cfg.DNS.Listen)
		return b.String()
	}
	fmt.Fprintf(&b, "systemd-resolved is not running here. Pick one:\n\n")
	fmt.Fprintf(&b, "dnsmasq (only ~%s goes to weft), in /etc/dnsmasq.d/weft.conf:\n", dom)
	if loop.Port() == 53 {
		fmt.Fprintf(&b, "    server=/%s/%s\n", dom, loop.Addr())
	} else {
		fmt.Fprintf(&b, "    server=/%s/%s#%d\n", dom, loop.Addr(), loop.Port())
	}
	if cfg.DNS.ConsulAlias {
		fmt.Fprintf(&b, "    server=/consul/%s\n", loop.Addr())
	}
	fmt.Fprintf(&b, "\n/etc/resolv.conf (glibc asks the next nameserver when weft REFUSES a name outside .%s):\n", dom)
	if loop.Port() != 53 {
		fmt.Fprintf(&b, "    (resolv.conf cannot name a port: set dns.listen to %s:53 first)\n", loop.Addr())
	}
	fmt.Fprintf(&b, "    nameserver %s      # first, before the existing nameserver lines\n", loop.Addr())
	if cfg.DNS.Upstream == "" {
		fmt.Fprintf(&b, "    # or set dns.upstream to your resolver so the agent forwards the other names\n")
	}
	return b.String()
}
