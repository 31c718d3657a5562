package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// benchBinary is the benchmark's own binary, kept out of the daemon so that weft links no
// plotting code.
const benchBinary = "weft-bench"

// errNoBench says where weft bench looked and how to get the binary.
var errNoBench = errors.New(benchBinary + " not found")

// newBenchCmd is a thin launcher: it execs weft-bench with the same arguments and this
// binary as the weft under test (--weft-bin, which a later --weft-bin overrides).
func newBenchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bench [weft-bench flags]",
		Short: "Measure weft's throughput and latency against bare veth, kernel VXLAN and wireguard-go (runs weft-bench; root)",
		Long: `Runs weft-bench, the benchmark's own binary, found next to this weft binary or on PATH,
with these arguments and --weft-bin set to this weft. 'weft bench --help' shows its flags.

Build it with 'make build' (bin/weft-bench beside bin/weft) or
'go build -o bin/weft-bench ./cmd/weft-bench'.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this executable: %w", err)
			}
			bin, err := findBench(self)
			if err != nil {
				return err
			}
			argv := append([]string{bin, "--weft-bin=" + self}, args...)
			return syscall.Exec(bin, argv, os.Environ())
		},
	}
}

// findBench looks for weft-bench in the directory of self (the weft executable), then on PATH.
func findBench(self string) (string, error) {
	next := filepath.Join(filepath.Dir(self), benchBinary)
	if st, err := os.Stat(next); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return next, nil
	}
	if p, err := exec.LookPath(benchBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w next to %s or on PATH: build it with `make build` (bin/weft-bench beside bin/weft) or `go build -o %s ./cmd/weft-bench`",
		errNoBench, self, next)
}
