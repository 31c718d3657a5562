// Package policydist spreads a CA-signed network policy document by gossip: it cuts the
// signed envelope into Serf user events (chunks), reassembles and verifies what arrives,
// keeps the newest verified document on disk, announces its version in a member tag and
// re-sends it to members that lag (anti-entropy, by one designated sender).
//
// It judges nothing itself: a verified document is handed to the caller's Install (the
// agent's network-policy subsystem compiles and enforces it). It may import identity,
// policy, discovery/membership and internal/fsutil, and nothing of the agent or the
// datapath.
package policydist
