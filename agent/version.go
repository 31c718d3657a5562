// Package agent is weft's composition root: it reads the configuration, wires gossip
// membership into the peer table, runs the datapath and serves the control API.
package agent

// Version is the weft release; overridden at build time with -ldflags "-X ...agent.Version=...".
var Version = "0.1.0-dev"

// ProtocolVersion is the wire and tag protocol spoken by this build, gossiped in the node tags.
const ProtocolVersion = 1
