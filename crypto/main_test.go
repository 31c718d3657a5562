package crypto

import (
	"testing"

	"go.uber.org/goleak"
)

// Identity starts the rate limiter's goroutine and the interop tests run
// wireguard-go devices: all must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
