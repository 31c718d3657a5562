package agent

import (
	"net"
	"os"
	"strconv"
	"time"
)

// systemd's readiness protocol (sd_notify(3)), spoken directly: a datagram of
// "KEY=VALUE\n..." to the unix socket named by $NOTIFY_SOCKET (an abstract one when the
// name starts with '@'). Without the variable every call is a no-op, so the agent behaves the
// same outside systemd. The agent sends READY=1 once the device, gossip and the control API
// are up, RELOADING=1 … READY=1 around a reload, STOPPING=1 when it begins to stop, and, when
// the unit sets WatchdogSec=, WATCHDOG=1 at half the interval.

// sdNotify sends state to the service manager; it reports whether a manager listens.
func sdNotify(state string) bool {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err == nil
}

// watchdogInterval is how often to send WATCHDOG=1: half of $WATCHDOG_USEC when the
// watchdog is meant for this process ($WATCHDOG_PID unset or ours), else 0.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// startWatchdog pings the watchdog until stop is called; without one it does nothing.
func startWatchdog() (stop func()) {
	every := watchdogInterval()
	if every <= 0 {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sdNotify("WATCHDOG=1")
			}
		}
	}()
	return func() { close(done); <-exited }
}
