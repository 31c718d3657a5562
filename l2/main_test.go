package l2

import (
	"os"
	"testing"
)

// TestMain runs the kernel-interop helper process (l2HelperMain, see plain_netns_test.go)
// when WEFT_L2_HELPER names its mode, and the tests otherwise.
func TestMain(m *testing.M) {
	if mode := os.Getenv(l2HelperEnv); mode != "" {
		os.Exit(l2HelperMain(mode))
	}
	os.Exit(m.Run())
}
