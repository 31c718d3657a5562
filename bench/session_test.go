package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	errNotYet := errors.New("not yet")
	errDied := errors.New("daemon died")
	tests := []struct {
		name    string
		okAfter int // check succeeds on this call; 0: never
		abort   func() error
		timeout time.Duration
		want    error // nil, errDied, or context.DeadlineExceeded
	}{
		{name: "at once", okAfter: 1, timeout: time.Second},
		{name: "third try", okAfter: 3, timeout: 5 * time.Second},
		{name: "abort", abort: func() error { return errDied }, timeout: 5 * time.Second, want: errDied},
		{name: "timeout", timeout: 200 * time.Millisecond, want: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := poll(context.Background(), tt.timeout, "thing", func() error {
				calls++
				if tt.okAfter > 0 && calls >= tt.okAfter {
					return nil
				}
				return errNotYet
			}, tt.abort)
			if tt.want == nil {
				if err != nil || calls != tt.okAfter {
					t.Fatalf("err %v after %d calls, want success on call %d", err, calls, tt.okAfter)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "waiting for thing") {
				t.Fatalf("err = %v, want %v naming what was awaited", err, tt.want)
			}
		})
	}
}
