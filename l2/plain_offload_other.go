//go:build !linux

package l2

import "net"

// Without Linux's UDP_SEGMENT and UDP_GRO the plaintext VTEP sends and reads one datagram
// per syscall.

const plainMaxSegments = 1

func plainEnableGRO(*net.UDPConn) bool         { return false }
func plainPutSegment(oob []byte, _ int) []byte { return oob[:0] }
func plainGROSize([]byte) int                  { return 0 }
func plainGSOUnsupported(error) bool           { return true }
