package bench

// A session is one system's turn in one round: a fresh lab of two namespaces joined by a
// veth pair, the processes a system starts in them, and a scratch directory for their
// configs. Closing it stops the processes (SIGTERM, then SIGKILL), deletes the namespaces
// and the directory, so one system's leftovers never bias the next.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weftnet/weft/internal/headbuf"
	"github.com/weftnet/weft/internal/netlab"
)

// Underlay of every lab: a /24 that exists only inside the lab's two namespaces.
const (
	underlayIf      = "eth0"
	underlayA       = "192.168.231.1"
	underlayB       = "192.168.231.2"
	underlayBits    = "/24"
	iperf3Port      = "5201"
	stopGracePeriod = 3 * time.Second
)

type session struct {
	opts *Options
	log  *slog.Logger
	lab  *netlab.Lab
	a, b *netlab.Host
	dir  string
	// underlayMTU is the MTU of the veth link between a and b (0: the kernel's default).
	underlayMTU int

	mu    sync.Mutex
	procs []*process

	// dead is closed when the first of procs exits: they all are meant to run until close,
	// so a measurement in progress can stop at once instead of running into its timeout.
	dead     chan struct{}
	deadOnce sync.Once
}

// newSession builds the lab: hosts a and b, eth0 on each with the underlay addresses.
func newSession(o *Options, system string, underlayMTU int) (s *session, err error) {
	lab, a, b, err := netlab.Pair(underlayIf, underlayA+underlayBits, underlayB+underlayBits)
	if err != nil {
		return nil, err
	}
	s = &session{opts: o, log: o.Logger.With("system", system, "lab", lab.ID(), "underlay_mtu", underlayMTU), lab: lab, a: a, b: b,
		dead: make(chan struct{}), underlayMTU: underlayMTU}
	if underlayMTU != 0 {
		for _, h := range []*netlab.Host{a, b} {
			if _, err := h.Run("ip", "link", "set", underlayIf, "mtu", fmt.Sprint(underlayMTU)); err != nil {
				s.close()
				return nil, fmt.Errorf("underlay MTU %d: %w", underlayMTU, err)
			}
		}
	}
	if s.dir, err = os.MkdirTemp("", "weft-bench-"+lab.ID()+"-"); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// run runs a command in h for at most a minute (or until ctx ends) and logs it.
func (s *session) run(ctx context.Context, h *netlab.Host, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s.log.Debug("run", "host", h.Name, "cmd", name+" "+strings.Join(args, " "))
	return h.RunContext(ctx, name, args...)
}

// runAll runs several `ip`-style commands in order, stopping at the first failure.
func (s *session) runAll(ctx context.Context, h *netlab.Host, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := s.run(ctx, h, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// process is a long-running command inside a namespace (a daemon of some system or the
// iperf3 server). Its output is kept, bounded, for error messages.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *headbuf.Buffer
	cancel context.CancelFunc
	done   chan struct{} // closed when the process has exited
	err    error         // exit status, valid after done
	// system marks a process of the system under test (an agent, wireguard-go), whose CPU
	// time MetricCPUPerGB counts; not the iperf3 server.
	system bool
}

// start launches a process in h that lives until the session closes.
func (s *session) start(h *netlab.Host, name string, args ...string) (*process, error) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{name: h.Name + ": " + name, out: headbuf.New(64 << 10), cancel: cancel, done: make(chan struct{})}
	p.cmd = h.Command(ctx, name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	s.log.Debug("start", "host", h.Name, "cmd", name+" "+strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
		s.deadOnce.Do(func() { close(s.dead) })
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// exited returns a descriptive error when the process has ended, nil while it runs.
func (p *process) exited() error {
	select {
	case <-p.done:
		if out := strings.TrimSpace(p.out.String()); out != "" {
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, tail(out, 800))
		}
		return fmt.Errorf("%s exited (%v)", p.name, p.err)
	default:
		return nil
	}
}

// stop asks the process group to terminate and kills it after stopGracePeriod.
func (p *process) stop() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(stopGracePeriod):
		p.cancel() // SIGKILL to the group (netlab's Cancel)
		<-p.done
	}
	p.cancel()
}

// close stops every process, deletes the namespaces and the scratch directory.
func (s *session) close() error {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
	var errs []error
	if s.lab != nil {
		errs = append(errs, s.lab.Close())
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// poll calls check until it returns nil, ctx ends or timeout passes; abort, when non-nil and
// returning an error, ends the wait early (e.g. the daemon being waited for has exited).
func poll(ctx context.Context, timeout time.Duration, what string, check func() error, abort func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if abort != nil {
			if aerr := abort(); aerr != nil {
				return fmt.Errorf("waiting for %s: %w", what, aerr)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// linkMTU returns the MTU of ifname in h, as `ip -o link` prints it.
func (s *session) linkMTU(ctx context.Context, h *netlab.Host, ifname string) (int, error) {
	out, err := s.run(ctx, h, "ip", "-o", "link", "show", "dev", ifname)
	if err != nil {
		return 0, err
	}
	return parseLinkMTU(out)
}

// parseLinkMTU reads the "mtu N" field of one line of `ip -o link show`.
func parseLinkMTU(out string) (int, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "mtu" {
			return strconv.Atoi(f[i+1])
		}
	}
	return 0, fmt.Errorf("no mtu in %q", out)
}

// waitLink waits until the interface exists in h (a daemon creating its TUN).
func (s *session) waitLink(ctx context.Context, h *netlab.Host, ifname string, p *process) error {
	return poll(ctx, 10*time.Second, "interface "+ifname+" on "+h.Name, func() error {
		_, err := h.RunContext(ctx, "ip", "link", "show", "dev", ifname)
		return err
	}, p.exited)
}

// waitReachable pings dst from h until one reply arrives: the overlay is up (and, for the
// encrypted systems, the first handshake done).
func (s *session) waitReachable(ctx context.Context, h *netlab.Host, dst string, timeout time.Duration) error {
	return poll(ctx, timeout, dst+" to answer ping from "+h.Name, func() error {
		_, err := h.RunContext(ctx, "ping", "-c", "1", "-W", "1", dst)
		return err
	}, s.exitedProcess)
}

// exitedProcess describes the first of the session's processes that has ended (they are
// all meant to run until close), or returns nil.
func (s *session) exitedProcess() error {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	for _, p := range procs {
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}

// startSystem is start for a process of the system under test (see process.system).
func (s *session) startSystem(h *netlab.Host, name string, args ...string) (*process, error) {
	p, err := s.start(h, name, args...)
	if p != nil {
		p.system = true
	}
	return p, err
}

// systemCPU returns the CPU seconds (user + system) the system's processes have used so far
// and whether there are any. `ip netns exec` execs the command, so the PID is the daemon's.
func (s *session) systemCPU() (float64, bool, error) {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	var total float64
	var any bool
	for _, p := range procs {
		if !p.system || p.cmd.Process == nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
		if err != nil {
			return 0, any, fmt.Errorf("cpu time of %s: %w", p.name, err)
		}
		secs, err := parseProcStatCPU(string(b))
		if err != nil {
			return 0, any, fmt.Errorf("cpu time of %s: %w", p.name, err)
		}
		total += secs
		any = true
	}
	return total, any, nil
}

// procClockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux ABI.
const procClockTicks = 100

// parseProcStatCPU returns utime + stime in seconds from the text of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses: fields are counted after its last
// ')'; utime and stime are fields 14 and 15.
func parseProcStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", tail(stat, 80))
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat %q", tail(stat, 80))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat times %q %q", f[11], f[12])
	}
	return float64(u+st) / procClockTicks, nil
}
