// Package identity is weft's cluster CA: Ed25519 CA certificates, host
// certificates that bind a host's node name, WireGuard public key, prefixes
// and groups, and their verification against a pool of trusted CAs and a
// blocklist. It is in the spirit of Nebula's certificates, with a compact
// binary body because a host certificate travels in a Serf tag, where all of
// a member's tags share 512 bytes.
//
// # Trust model
//
// The gossip key only lets a host talk to the cluster. With a CA configured,
// what a member may claim comes from its certificate, not from its tags:
//
//   - The CA key (ca.key, `weft ca init`) is the root of trust: whoever holds
//     it can admit hosts, so it stays off the hosts. Every host trusts the CA
//     certificate (ca.crt), possibly several during a rotation (a CAPool).
//   - A host certificate (`weft ca sign`) is signed by the CA and names one
//     node name, one WireGuard public key, the prefixes the host may announce
//     (a subnet, static prefixes) and its groups, for a validity window.
//     A member announcing anything its certificate does not cover is refused.
//     A certificate narrows, never widens, the rules that hold without a CA
//     (a subnet is still one /24 of the cluster CIDR, a MAC is still the one
//     derived from the key): those stay the gossip layer's checks.
//   - A CA may itself be constrained to prefixes and groups: its host
//     certificates must stay within them (ErrCAConstraint), and within its
//     validity window. Sign enforces this when issuing, Verify when checking,
//     so a constrained CA's key cannot be used to claim more.
//   - A blocklist of fingerprints revokes a host certificate, or a whole CA.
//     A fingerprint is SHA-256 of the certificate's body (everything but the
//     signature): no second signature over a revoked body can escape it.
//   - Expiry is absolute: nothing verifies outside its window or its CA's;
//     TimeLeft / ExpiresWithin / CAPool.ExpiringWithin drive warnings ahead
//     of time, and a renewed certificate simply has a new fingerprint.
//
// What a certificate does not do: it does not prove that the member talking
// in gossip holds the private key of the certificate's WireGuard key. The
// datapath makes up for it: it only ever talks to that key, and the Noise
// handshake fails for anyone who lacks it. A copied certificate lets its
// copier announce the victim's claims under the victim's name and key: while
// the victim is up that is a duplicate key (refused by the gossip layer);
// while it is down the copier can at most attract the victim's encrypted
// traffic to its own address, where it cannot decrypt it (a denial of
// service, not a breach). Revoke a host by blocklisting its fingerprint.
//
// # Format, version 1
//
// A certificate is a body followed by a 64-byte Ed25519 signature over
// "weft certificate v1\x00" || body (the context string keeps a CA's
// signatures over other documents, such as a signed policy, from being
// presented as certificates). All integers are big-endian.
//
//	size   field
//	1      version = 1
//	1      kind: 1 CA, 2 host
//	1      name length n, 1..64
//	n      name: printable ASCII, no spaces
//	32     public key: Ed25519 (CA) or X25519 WireGuard key (host)
//	4      not before, Unix seconds (uint32: up to 2106)
//	4      not after, Unix seconds, > not before; both inclusive
//	1      prefix count, 0..16; then each prefix, sorted, distinct:
//	         1   length byte: IPv4 0..32 = /len; IPv6 64..192 = /(byte-64)
//	         k   the first ceil(len/8) address bytes; bits past len are 0
//	1      group count, 0..16; then each group, sorted, distinct:
//	         1   length m, 1..32
//	         m   printable ASCII, no spaces, no commas
//	16     issuer (host only): first 16 bytes of the CA's fingerprint
//	64     signature
//
// IPv4-mapped IPv6 prefixes are refused: their meaning as IPv4 or IPv6 would
// depend on the reader. A typical host certificate (12-character name, one
// /24, two groups) is 150 bytes, 200 characters as a tag (unpadded
// base64url, EncodeTag) and 205 bytes of Serf metadata; with the 70 bytes of
// the node-info tag that leaves 237 of 512 for the catalog
// (TestCertificate_Size measures this). The largest certificate the limits
// allow is MaxCertificateSize (989) bytes.
//
// The decoder is strict and canonical: every length and count is bounded
// before use, every field is checked against its domain, trailing bytes and
// unknown versions are refused, and what it accepts MarshalBinary
// reproduces byte for byte, so one signature never covers two parses.
// Decoding never panics (FuzzIdentity_Decode) and a mutated certificate
// either fails Verify or is byte-identical to a signed one
// (FuzzIdentity_Verify).
//
// On disk certificates are PEM ("WEFT HOST CERTIFICATE", "WEFT CA
// CERTIFICATE"; a CA file may hold several CAs) and the CA key is the
// 32-byte Ed25519 seed in a "WEFT CA PRIVATE KEY" block, mode 0600.
//
// # Use from the gossip layer
//
// Load once and on reload (SIGHUP), then swap the values in; all of them
// are immutable and safe for concurrent use:
//
//	pool, err := identity.LoadCAPoolFile(cfg.PKI.CA)          // trusted CAs
//	bl, err := identity.LoadBlocklistFile(cfg.PKI.Blocklist)  // optional
//	own, err := identity.LoadCertificateFile(cfg.PKI.Cert)    // this host's
//	tag, err := own.EncodeTag()                               // set as tag identity.TagKey
//
// For every member update (not per packet):
//
//	cert, err := identity.DecodeTag(member.Tags[identity.TagKey])
//	if err == nil {
//		claims, err = identity.Verify(cert, pool, time.Now(), bl)
//	}
//	if err == nil {
//		err = claims.Check(member.Name, info.PublicKey, info.Subnet)
//	}
//	if err != nil {
//		refused.WithLabelValues(identity.Reason(err)).Inc() // closed label set: identity.Reasons()
//		// not peered, services not answered; show err in `weft members`
//	}
//
// Then the claims answer the datapath's questions: AllowsPrefix for static
// prefixes announced beyond the subnet, AllowsAddr for inner source
// addresses in L2, HasGroup for policy, ExpiresWithin for warnings. Verify
// checks an Ed25519 signature (about 0.1 ms, BenchmarkVerify): call it when
// a member's tag changes and on a timer for expiry, never per packet.
package identity
