package testkit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestEventually_Holds(t *testing.T) {
	n := 0
	r := &fatalRecorder{TB: t}
	Eventually(r, time.Second, func() bool { n++; return n == 5 }, "n to reach 5")
	if r.msg != "" || n != 5 {
		t.Fatalf("n %d, failure %q", n, r.msg)
	}
	Eventually(r, time.Second, func() error { return nil }, "nothing")
	if r.msg != "" {
		t.Fatal(r.msg)
	}
}

func TestEventually_Deadline(t *testing.T) {
	r := &fatalRecorder{TB: t}
	state := "start"
	start := time.Now()
	Eventually(r, 50*time.Millisecond, func() bool { state = "end"; return false }, "state %v",
		Later(func() any { return state }))
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	if r.msg != "timed out after 50ms waiting for state end" {
		t.Fatalf("failure %q", r.msg)
	}
	calls := 0
	Eventually(r, 20*time.Millisecond, func() error { calls++; return fmt.Errorf("attempt %d", calls) }, "%s", "api")
	if want := fmt.Sprintf("waiting for api: attempt %d", calls); !strings.HasSuffix(r.msg, want) {
		t.Fatalf("failure %q, want it to end %q", r.msg, want)
	}
}
