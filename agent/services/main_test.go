package services

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close stops every listener and the catalog's goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
