package tunnel

import "github.com/weftnet/weft/peers"

// Stats is a snapshot of the tunnel's global counters.
type Stats struct {
	// Drops counts dropped packets by reason name (peers.DropReason.String), for every
	// drop, whether or not a peer could be named; only nonzero reasons appear.
	Drops map[string]uint64
	// HandshakesSent counts initiations and responses sent.
	HandshakesSent uint64
	// KeepalivesSent counts keepalives sent.
	KeepalivesSent uint64
	// NoReplyHandshakes counts new handshakes started because data sent got no
	// authenticated reply for NewHandshakeTimeout (per peer: PeerStats.NoReplyHandshakes).
	NoReplyHandshakes uint64
	// CryptoWorkers is how many goroutines share a batch's encryption and decryption (1:
	// each loop does its own); ParallelBatches counts the batches they shared.
	CryptoWorkers   int
	ParallelBatches uint64
	// PartialSent and PartialReceived count data packets sent and delivered with their
	// inner checksum left partial (partial.go); PartialChecksums says whether this side's
	// device takes them (and so says so to its peers).
	PartialSent, PartialReceived uint64
	PartialChecksums             bool
	// PathMTUProbes counts path-MTU probes sent; PathMTUChanges the changes of a peer's
	// path MTU; ICMPTooBig the ICMP errors written into the device for packets too big
	// for their peer's path, ICMPLimited those the rate limit held back;
	// PathErrorsIgnored the kernel's errors about sent datagrams that named no peer or
	// found the worker's queue full.
	PathMTUProbes, PathMTUChanges, ICMPTooBig, ICMPLimited, PathErrorsIgnored uint64
}

// Stats returns a snapshot of the global counters (allocates; control path).
func (t *Tunnel) Stats() Stats {
	return Stats{
		Drops:          t.drops.Snapshot(),
		HandshakesSent: t.handshakesSent.Load(),
		KeepalivesSent: t.keepalivesSent.Load(),

		NoReplyHandshakes: t.noReplyHandshakes.Load(),
		CryptoWorkers:     t.workers,
		ParallelBatches:   t.parallelBatches.Load(),
		PartialSent:       t.partialSent.Load(),
		PartialReceived:   t.partialRecv.Load(),
		PartialChecksums:  t.partialDev != nil,
		PathMTUProbes:     t.probesSent.Load(),
		PathMTUChanges:    t.pmtuChanges.Load(),
		ICMPTooBig:        t.icmpSent.Load(),
		ICMPLimited:       t.icmpLimited.Load(),
		PathErrorsIgnored: t.pmtuIgnored.Load(),
	}
}

// drop counts n packets dropped for r, globally and for p when known.
func (t *Tunnel) drop(p *peers.Peer, r peers.DropReason, n uint64) {
	t.drops.Add(r, n)
	if p != nil {
		p.AddDrop(r, n)
	}
}
