// Package deptest holds weft's import rules as tests. The "Never" rules of DESIGN.md
// (crypto, identity and policy import neither the datapath nor discovery; peers imports
// neither tunnel nor discovery; nothing in discovery imports the datapath or the agent;
// a subsystem never imports the agent root; the daemon binary links no plotting, CNI code
// or testing; nothing imports cmd or bench) are checked over the package graph that
// `go list -deps -test -json` prints, in the manner of Tailscale's tstest/deptest. A broken
// rule is reported with the import chain that breaks it.
//
// The package has no code of its own besides its test and imports nothing of weft: it reads
// the graph through the go command.
package deptest
