// Package trust is weft's rule book for gossip claims: who may claim what. It checks one
// member's announcement (subnet, MAC, public key, certificate) against this host's view
// (CheckClaim over a Policy), loads the cluster CA, this host's certificate and the
// blocklist (LoadPKI), filters the claims the subnet allocator counts (AllocationFilter),
// and keeps the verdicts per member (Ledger): refusals logged and counted once per change,
// the verified certificates' claims, and which members announce the same key.
//
// Everything here is pure logic over values: the gossip glue (agent/gossip) calls it for
// every member update and acts on the verdict; nothing here touches the datapath.
//
// It may import identity, crypto and discovery/membership; never the agent, its
// subsystems or the datapath (tunnel, peers, tap, l2).
package trust
