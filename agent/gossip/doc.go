// Package gossip is the agent's gossip glue: it runs this host's Serf member
// (discovery/membership) and turns membership into peers. A member that joins or
// updates its tags is checked against the trust rules (discovery/trust) and, when its
// claims pass, handed to the datapath as a Peer with its subnet; one that leaves, fails
// or is refused is withdrawn. Every member change then goes out through one fan-out
// (Subscribe) to whoever follows members (the catalog, the policy).
//
// It also chooses the gossip advertise address (advertise.go) and runs retry_join
// (retryjoin.go).
//
// It gets what it needs from the agent as a Config and a Deps struct of functions and
// never holds the agent. It may import agent/config, agent/api, discovery/membership,
// discovery/trust, identity, crypto and peers (for peers.ErrPrefixMoved); never the
// agent package or another agent subsystem.
package gossip
