// Package peers is the peer table behind both directions of weft's datapath.
//
// A Table finds a Peer three ways: by static public key (control path and handshake),
// by receiver index (every inbound transport message) and by longest-prefix match of an
// inner destination address over the peers' allowed prefixes (every outbound packet).
// The two hot-path lookups, ByIndex and Lookup, read immutable snapshots published
// through atomic pointers: they take no lock and never allocate. Writers (Upsert,
// Remove, index allocation) serialize on the table's mutex and publish a new snapshot.
//
// Each Peer carries its endpoint, its crypto.Handshake and crypto.Keypairs, its session
// state (handshake in flight, pending packets) and atomic counters, including drops by
// named reason (DropReason).
package peers
