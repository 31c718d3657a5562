package membership

import (
	"testing"

	"go.uber.org/goleak"
)

// Serf and memberlist start goroutines; none may outlive a test (as in the catalog).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
