// Package membership is weft's cluster membership between hosts: Serf gossip
// with an encrypted keyring, the compact NodeInfo tag, per-host subnet
// allocation without a central store, and the member events the agent turns
// into peers.
//
// A Cluster (New) runs one Serf instance with an encrypted keyring. Each host
// announces a NodeInfo (public key, data port, subnet, VNI, protocol, mode,
// MAC) in the single tag TagNodeInfo; the rest of Serf's 512-byte metadata
// budget (TagBudget) is for other tags (the catalog's), set with SetTag, which
// refuses with ErrTagBudget what would not fit. The agent reads Members and
// Events and turns them into peers; membership itself knows nothing of the
// datapath: public keys are plain [32]byte.
//
// Subnet allocation is described at the top of subnet.go.
package membership
