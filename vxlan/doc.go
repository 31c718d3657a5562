// Package vxlan is the VXLAN(-GPE) header codec shared by weft's two datapaths: the
// encrypted loop (package tunnel, the header inside the AEAD) and the plain RFC 7348 VTEP
// (package l2). It imports nothing of weft, so neither datapath imports the other.
package vxlan
