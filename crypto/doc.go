// Package crypto is weft's WireGuard cryptography: Curve25519 static keys in
// WireGuard's text form, the Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake
// byte for byte (message types 1, 2 and 3, mac1/mac2, cookies, TAI64N
// timestamps), the rate limiter for handshakes under load, transport
// keypairs that seal and open in place without allocating, and WireGuard's
// rotation of current, previous and next keypairs.
//
// Messages are interoperable with WireGuard: the interop tests complete
// handshakes and exchange packets with an in-process wireguard-go device in
// both directions.
//
// The package keeps no indexes and no peer table: callers allocate receiver
// indexes, route incoming messages by them, and free the indexes of the
// keypairs Keypairs evicts. Every failure is a named error (errors.Is) so the
// datapath can count drops by reason; nothing on the packet path formats or
// logs.
package crypto
