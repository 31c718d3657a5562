// Package agent is weft's composition root: it reads the configuration, wires gossip
// membership into the peer table, runs the datapath and serves the control API.
package agent

import "github.com/weftnet/weft/internal/version"

// Version is this build's version (internal/version: stamped by `make build` from git,
// else the VCS information the Go toolchain recorded); the status API reports it.
var Version = version.String()

// ProtocolVersion is the wire and tag protocol spoken by this build, gossiped in the node tags.
const ProtocolVersion = 1
