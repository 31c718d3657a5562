// Package resolvertest holds the fakes for tests of agent/resolver and of the code that
// drives it, after wireguard-go's tun/tuntest: Resolvectl, a recording resolvectl.
//
// It is for tests only and imports nothing of weft (so agent/resolver's own tests can use it).
package resolvertest
