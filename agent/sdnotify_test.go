package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSystemd listens where $NOTIFY_SOCKET points and returns the datagrams it receives.
func fakeSystemd(t *testing.T, name string) <-chan string {
	t.Helper()
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	if name[0] == '@' {
		addr.Name = "\x00" + name[1:]
	}
	c, err := net.ListenUnixgram("unixgram", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", name)
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return got
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
		return ""
	}
}

func TestSdNotify_PathAndAbstractSocket(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@weft-test-" + strconv.Itoa(os.Getpid())} {
		t.Run(name, func(t *testing.T) {
			got := fakeSystemd(t, name)
			if !sdNotify("READY=1") {
				t.Fatal("sdNotify reported no manager")
			}
			if s := recv(t, got); s != "READY=1" {
				t.Fatalf("got %q", s)
			}
			sdNotify("STOPPING=1")
			if s := recv(t, got); s != "STOPPING=1" {
				t.Fatalf("got %q", s)
			}
		})
	}
}

func TestSdNotify_NoManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sdNotify("READY=1") {
		t.Fatal("notified without NOTIFY_SOCKET")
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if sdNotify("READY=1") {
		t.Fatal("reported a manager on a socket nobody listens on")
	}
}

func TestWatchdog(t *testing.T) {
	got := fakeSystemd(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	t.Setenv("WATCHDOG_USEC", "100000")
	if watchdogInterval() != 0 {
		t.Fatal("a watchdog meant for another process was taken")
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d := watchdogInterval(); d != 50*time.Millisecond {
		t.Fatalf("interval %s, want half of 100ms", d)
	}
	stop := startWatchdog()
	for range 2 {
		if s := recv(t, got); !strings.HasPrefix(s, "WATCHDOG=1") {
			t.Fatalf("got %q", s)
		}
	}
	stop()
}
