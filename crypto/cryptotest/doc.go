// Package cryptotest holds test helpers for packages that use weft's crypto, after
// wireguard-go's tun/tuntest: NewKey, a fresh private key, and NewIdentity, a fresh identity
// closed when the test ends.
//
// It is for tests only: _test.go files of any package but crypto's own (which would be an
// import cycle) may import it. It imports crypto and the standard library, nothing else.
package cryptotest
