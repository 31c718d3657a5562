// Package tunnel is weft's encrypted datapath: the batched packet loop, its handshake
// worker and timers, and the Router seam that L3 and L2 mode plug into.
//
// A Tunnel joins a tun.Device (inner packets: a TUN, or a TAP from package tap) to a
// conn.Bind (UDP underlay) through a peers.Table. Outbound, an inner packet is read once
// into a buffer at an offset that leaves headroom for the transport (16) and VXLAN (8)
// headers, routed by a Router, sealed in place and sent in per-peer batches. Inbound, a
// datagram is opened in place, its VNI checked, its inner packet vetted by the Router
// (cryptokey routing in L3 mode) and written to the device in one batch. See send.go and
// receive.go for the flows and router.go for the seam; the VXLAN header codec is package
// vxlan's, the L2 Router (l2.Router) and the plain VTEP are package l2's.
package tunnel
