// Package tap is weft's Linux TAP device behind wireguard-go's tun.Device: whole Ethernet
// frames with a virtio-net header, batched reads, TSO super-frames cut into ordinary frames
// on the way out of the kernel and consecutive segments of one flow merged (GRO) on the way
// in. Both L2 datapaths drive it: the encrypted loop (package tunnel, offloads on) and the
// plain VTEP (package l2, ordinary frames).
package tap
