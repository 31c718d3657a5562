// Package enroll is the enrollment exchange: a joining host proves a join token to a CA host
// (a host that holds the cluster CA's key) and receives its host certificate, the CA
// certificate, the gossip key and the cluster CIDR; an enrolled host renews its certificate
// the same way, proving its current certificate's key instead of a token.
//
// One exchange over TCP (the CA host's enroll port, 7947 by default):
//
//	joiner                                         CA host
//	  TLS 1.3 handshake (server: an ephemeral self-signed certificate that proves nothing;
//	  the client skips X.509 verification and relies on the channel binding below)
//	  E = ExportKeyingMaterial("weft enroll", nil, 32), the same on both ends of one session
//	                      <- ServerHello{CA cert, X25519 ephemeral P, Ed25519_CA(E ‖ P)}
//	  checks: SHA-256(CA cert) = the token's pin, the signature under the CA's key
//	  Request{enroll, name, WG key, token id, HMAC(K_token, E ‖ request)}    ->
//	  Request{renew,  name, WG key, cert,     HMAC(K_renew, E ‖ request)}    ->
//	                      <- Response{ok, host cert, gossip key, cluster CIDR} | {refused, reason}
//
// K_token = HKDF(token secret, "weft enroll token v1"): the CA host stores K_token, never the
// token's text. K_renew = HKDF(X25519(host key, P), salt E, "weft enroll renew v1"): only the
// holder of the certificate's private key computes it. Both MACs cover E, which is fresh per
// TLS session, so a request captured from one session is refused in any other (replay), and
// the CA's signature covers E, so a man in the middle who relays the TLS session cannot make
// the joiner accept another CA (pin) nor reuse a CA host's hello. Everything is crypto/tls,
// crypto/ed25519, crypto/ecdh, crypto/hkdf and crypto/hmac: no hand-rolled primitive.
//
// Messages are length-prefixed binary (messages.go), each bounded; the server bounds its
// sessions (deadlines, concurrency, a per-source rate) and counts every refusal by reason.
package enroll
