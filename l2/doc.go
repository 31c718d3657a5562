// Package l2 is weft's Ethernet side: the Ethernet and ARP codecs, the learning forwarding
// database (FDB, generic over what a MAC is learned behind), the Router that plugs the FDB
// into the encrypted loop (package tunnel's Router seam, satisfied without importing
// tunnel), and the plain RFC 7348 VTEP (`encryption: none`) that interoperates with the Linux
// kernel's vxlan device.
package l2
