package testkit

import (
	"fmt"
	"testing"
	"time"
)

// Timeout is the deadline most tests give Eventually: long enough for a loaded CI
// machine, short enough that a broken test fails rather than hangs.
const Timeout = 10 * time.Second

// Cond is what Eventually polls: a func() bool that reports whether the condition holds,
// or a func() error that returns nil when it holds (its last error is in the failure).
type Cond interface {
	func() bool | func() error
}

// Eventually polls cond until it holds and fails the test (t.Fatalf) when it still does
// not after timeout. The failure says what was awaited: format and args as for
// fmt.Sprintf, formatted only then (so a fmt.Stringer argument shows its final state),
// followed by cond's last error for a func() error. Polls start 1 ms apart and back off
// to 20 ms.
func Eventually[C Cond](t testing.TB, timeout time.Duration, cond C, format string, args ...any) {
	t.Helper()
	var check func() error
	switch c := any(cond).(type) {
	case func() bool:
		check = func() error {
			if c() {
				return nil
			}
			return errNotYet
		}
	case func() error:
		check = c
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			what := fmt.Sprintf(format, args...)
			if err == errNotYet {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
			}
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// errNotYet is the "error" of a func() bool condition that does not hold yet.
var errNotYet = notYet{}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

// Later is a message argument for Eventually computed only when the failure is reported,
// such as counters read at the deadline: Later(func() any { return c.Snapshot() }).
type Later func() any

// String formats the value f returns.
func (f Later) String() string { return fmt.Sprint(f()) }
