// Package tap is weft's Linux TAP device behind wireguard-go's tun.Device: whole Ethernet
// frames with a virtio-net header, batched reads, TSO super-frames cut into ordinary frames
// on the way out of the kernel and consecutive segments of one flow merged (GRO) on the way
// in. Both L2 datapaths drive it: the encrypted loop (package tunnel, offloads on) and the
// plain VTEP (package l2, ordinary frames).
//
// Two devices, one rule to choose between them (OpenBest, best_linux.go):
//
//   - Device (Open): IFF_VNET_HDR, TSO and checksum offload (EnableOffload), up to 64
//     frames per syscall. OpenBest opens it when offload is wanted and turns offload on
//     right away.
//   - FrameDevice (OpenFrames): a TAP opened through songgao/water, without a virtio-net
//     header, one frame per read(2) or write(2). OpenBest opens it when offload is not
//     wanted, or when the kernel refuses the header (EINVAL or EOPNOTSUPP from TUNSETIFF),
//     gso_max_segs or TUNSETOFFLOAD; Mode.Reason then says what was refused, for the caller
//     to log once. EPERM, EACCES, EBUSY and every other error are reported, not fallen
//     back on: they would fail the second open too, or hide a mistake.
//
// FrameDevice lacks EnableOffload and TrustWrittenChecksums, so the loops that look for
// them run frame by frame; but its Read returns the frames already queued as a batch (up
// to FrameBatchSize) and it has TryRead, so bursts still leave in one send. water opens /dev/net/tun without O_CLOEXEC (OpenFrames
// sets it right after) and leaks the descriptor when its TUNSETIFF fails.
package tap
