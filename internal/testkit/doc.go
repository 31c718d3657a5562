// Package testkit is the shared kit for weft's tests, after wireguard-go's tun/tuntest and
// conn/bindtest: a channel-backed fake tun.Device (Device), a fake conn.Bind that records
// what it sends (CaptureBind) and its endpoint (Endpoint), builders of IPv4/IPv6 UDP, TCP
// and ICMP packets and Ethernet frames with valid checksums, and Eventually, the one poll
// helper with a deadline.
//
// testkit is for tests only: it may be imported by _test.go files of any package, and by
// no non-test file (TestNotImportedByNonTestCode holds that). It imports the standard
// library and wireguard-go's tun and conn, never a weft package, so that every weft
// package's own (in-package) tests can import it without an import cycle.
package testkit
