package agent

// The host's resolver: when systemd-resolved runs, the agent makes it send the names of its
// DNS domain (~weft, a routing-only domain) to its DNS server, on the device's link, so
// `curl http://web.service.weft` works without @127.0.0.1; it reverts the link on exit.
// Without resolved it says so, and `weft dns setup` (ResolverSetup) prints the line to add
// to /etc/resolv.conf or dnsmasq.
//
// resolvectl is used rather than D-Bus directly: it is resolved's own client, present
// wherever resolved is, and speaks the same D-Bus calls (SetLinkDNS, SetLinkDomains,
// RevertLink). It takes the link by name and resolves it in the caller's network
// namespace, while resolved lives in the host's: an agent in another namespace than PID 1
// (a lab, a container) would configure some other link of the host, so it does not try.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/weftnet/weft/agent/config"
)

// resolvedRunDir exists while systemd-resolved runs.
const resolvedRunDir = "/run/systemd/resolve"

// hostResolver configures systemd-resolved; its fields are seams for tests.
type hostResolver struct {
	runDir string
	// run runs resolvectl with args.
	run func(ctx context.Context, args ...string) ([]byte, error)
	// sameNetns reports whether this process shares PID 1's network namespace.
	sameNetns func() bool
	// needBinary: resolvectl must be on PATH.
	needBinary bool
}

func systemResolver() hostResolver {
	return hostResolver{
		runDir:     resolvedRunDir,
		needBinary: true,
		run: func(ctx context.Context, args ...string) ([]byte, error) {
			path, err := exec.LookPath("resolvectl")
			if err != nil {
				return nil, err
			}
			return exec.CommandContext(ctx, path, args...).CombinedOutput()
		},
		sameNetns: func() bool {
			self, err1 := os.Readlink("/proc/self/ns/net")
			init, err2 := os.Readlink("/proc/1/ns/net")
			return err1 == nil && err2 == nil && self == init
		},
	}
}

// errNoResolved: systemd-resolved is not running (or cannot be configured from here).
var errNoResolved = errors.New("systemd-resolved is not running")

// available says whether resolved can be configured, and if not, why.
func (r hostResolver) available() error {
	if st, err := os.Stat(r.runDir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w (no %s)", errNoResolved, r.runDir)
	}
	if r.sameNetns != nil && !r.sameNetns() {
		return fmt.Errorf("%w in this network namespace (the agent is not in the host's)", errNoResolved)
	}
	if _, err := exec.LookPath("resolvectl"); err != nil && r.needBinary {
		return fmt.Errorf("%w: no resolvectl", errNoResolved)
	}
	return nil
}

// resolvedServer renders addr as resolvectl takes it: IP, or IP:PORT / [IP]:PORT off 53.
func resolvedServer(addr netip.AddrPort) string {
	if addr.Port() == 53 {
		return addr.Addr().String()
	}
	return addr.String()
}

// configure points the link's DNS at server for ~domain; the returned func reverts it.
func (r hostResolver) configure(iface string, server netip.AddrPort, domain string) (func() error, error) {
	if err := r.available(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dom := "~" + strings.TrimSuffix(domain, ".")
	steps := [][]string{
		{"dns", iface, resolvedServer(server)},
		{"domain", iface, dom},
	}
	revert := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := r.run(ctx, "revert", iface); err != nil {
			return fmt.Errorf("resolvectl revert %s: %w: %s", iface, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, args := range steps {
		if out, err := r.run(ctx, args...); err != nil {
			_ = revert()
			return nil, fmt.Errorf("resolvectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// Only ~domain goes to the agent, never the host's other names (older resolved lacks
	// default-route; the routing-only domain already keeps it off the default route there).
	_, _ = r.run(ctx, "default-route", iface, "false")
	return revert, nil
}

// resolverServer picks the DNS address resolved should use: the overlay one (on the link
// itself), else a loopback one.
func resolverServer(addrs []netip.AddrPort, overlay netip.Addr) (netip.AddrPort, bool) {
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

// setupResolver configures resolved for the DNS server just started on addrs (through r,
// zero: the system's), overlay being the overlay address; without resolved, it says so. It
// returns what reverts the configuration, or nil (services.Deps.HostResolver).
func (a *Agent) setupResolver(r hostResolver, addrs []netip.AddrPort, overlay netip.Addr) func() {
	if a.cfg.DNS.ResolvedDisabled {
		return nil
	}
	server, ok := resolverServer(addrs, overlay)
	if !ok {
		a.log.Warn("host resolver not configured: no DNS listen address on the overlay or loopback")
		return nil
	}
	if r.run == nil {
		r = systemResolver()
	}
	revert, err := r.configure(a.cfg.Interface, server, a.cfg.DNS.Domain)
	if errors.Is(err, errNoResolved) {
		a.log.Warn("host resolver not configured: "+err.Error()+"; run `weft dns setup` for the line to add to the host's resolver",
			"dns", server.String())
		return nil
	}
	if err != nil {
		a.log.Error("host resolver not configured", "err", err)
		a.problem("systemd-resolved not configured: " + err.Error())
		return nil
	}
	a.log.Info("systemd-resolved sends ~"+strings.TrimSuffix(a.cfg.DNS.Domain, ".")+" to the agent", "interface", a.cfg.Interface, "dns", server.String())
	return func() {
		if err := revert(); err != nil {
			a.log.Warn("reverting systemd-resolved", "err", err)
		}
	}
}

// ResolverSetup is what `weft dns setup` prints: how to make the host's resolver ask the
// agent for the names of cfg's DNS domain.
func ResolverSetup(cfg config.Config) string { return resolverSetup(cfg, systemResolver()) }

func resolverSetup(cfg config.Config, r hostResolver) string {
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
	if r.available() == nil && !cfg.DNS.ResolvedDisabled {
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
