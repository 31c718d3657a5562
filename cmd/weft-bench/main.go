// Command weft-bench is weft's benchmark harness (package bench): weft against bare veth,
// kernel VXLAN and wireguard-go in network namespaces. It is its own binary so that the
// daemon, weft, links no plotting code; `weft bench` execs it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-bench:", err)
		os.Exit(1)
	}
}
