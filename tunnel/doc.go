// Package tunnel is weft's datapath: devices (Linux TUN via wireguard-go's tun, TAP, fakes),
// the VXLAN(-GPE) codec and the batched, encrypted packet loop.
//
// A Tunnel joins a tun.Device (inner packets) to a conn.Bind (UDP underlay) through a
// peers.Table. Outbound, an inner packet is read once into a buffer at an offset that
// leaves headroom for the transport (16) and VXLAN (8) headers, routed by a Router,
// sealed in place and sent in per-peer batches. Inbound, a datagram is opened in place,
// its VNI checked, its inner packet vetted by the Router (cryptokey routing in L3 mode)
// and written to the device in one batch. See send.go and receive.go for the flows and
// router.go for the seam L2 mode plugs into.
package tunnel
