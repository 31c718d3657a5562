package identity

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A signed document is a blob the cluster CA vouches for (the network policy today),
// spread by gossip where anybody holding the gossip key could inject one. Its envelope:
//
//	magic "WSD1" (4) | issuer (16) | version (8, BE) | purpose length (1) | purpose |
//	body length (4, BE) | body | Ed25519 signature (64)
//
// The signature covers signedContext || everything before it. signedContext differs from
// the certificates' signContext, and the purpose ("policy") is signed too, so neither a
// certificate's signature nor a signature over another kind of document verifies as a
// policy, and a policy cannot be replayed as anything else. The version is signed: an
// attacker cannot renumber an old document to make it win. Nothing is trusted before
// VerifySigned; DecodeSigned only checks the shape.

const signedContext = "weft signed document v1\x00"

var signedMagic = [4]byte{'W', 'S', 'D', '1'}

const (
	// MaxSignedBody bounds a signed document's body; a larger envelope is malformed
	// before anything is allocated for it.
	MaxSignedBody = 64 << 10
	// MaxPurposeLen bounds the purpose string.
	MaxPurposeLen = 32
	signedFixed   = 4 + IssuerSize + 8 + 1 + 4 + SignatureSize
)

// Signed is a decoded signed document. Trust it only as VerifySigned returns it.
type Signed struct {
	Issuer    IssuerID // the CA that signed it (first bytes of its fingerprint)
	Version   uint64   // set by the signer; the newest valid version wins
	Purpose   string   // what the body is ("policy")
	Body      []byte
	Signature [SignatureSize]byte
}

// ErrBadEnvelope: the bytes are no signed document of this format.
var ErrBadEnvelope = errors.New("identity: malformed signed document")

// ErrWrongPurpose: the document is signed for another purpose than the one asked for.
var ErrWrongPurpose = errors.New("identity: signed document of another purpose")

func (s *Signed) appendUnsigned(b []byte) ([]byte, error) {
	if len(s.Purpose) == 0 || len(s.Purpose) > MaxPurposeLen || !validName(s.Purpose, MaxPurposeLen, true) {
		return nil, fmt.Errorf("%w: purpose %q", ErrBadEnvelope, s.Purpose)
	}
	if len(s.Body) > MaxSignedBody {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrBadEnvelope, len(s.Body), MaxSignedBody)
	}
	b = append(b, signedMagic[:]...)
	b = append(b, s.Issuer[:]...)
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = append(b, byte(len(s.Purpose)))
	b = append(b, s.Purpose...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Body)))
	return append(b, s.Body...), nil
}

// MarshalBinary returns the envelope.
func (s *Signed) MarshalBinary() ([]byte, error) {
	b, err := s.appendUnsigned(make([]byte, 0, signedFixed+len(s.Purpose)+len(s.Body)))
	if err != nil {
		return nil, err
	}
	return append(b, s.Signature[:]...), nil
}

// SignDocument signs body for purpose at version with the CA's key and returns the
// envelope. caKey must be ca's key.
func SignDocument(ca *Certificate, caKey ed25519.PrivateKey, purpose string, version uint64, body []byte) ([]byte, error) {
	if ca == nil || ca.Kind != KindCA {
		return nil, fmt.Errorf("%w: signing needs a CA certificate", ErrWrongKind)
	}
	if len(caKey) != ed25519.PrivateKeySize || !slices.Equal([]byte(caKey.Public().(ed25519.PublicKey)), ca.PublicKey[:]) {
		return nil, errors.New("identity: the CA key does not belong to the CA certificate")
	}
	fp, err := ca.Fingerprint()
	if err != nil {
		return nil, err
	}
	s := &Signed{Issuer: fp.Issuer(), Version: version, Purpose: purpose, Body: body}
	msg, err := s.appendUnsigned([]byte(signedContext))
	if err != nil {
		return nil, err
	}
	copy(s.Signature[:], ed25519.Sign(caKey, msg))
	return s.MarshalBinary()
}

// DecodeSigned parses an envelope without verifying it. It refuses trailing bytes and
// every length out of bounds; Body aliases b.
func DecodeSigned(b []byte) (*Signed, error) {
	if len(b) < signedFixed || [4]byte(b[:4]) != signedMagic {
		return nil, ErrBadEnvelope
	}
	s := &Signed{}
	p := b[4:]
	copy(s.Issuer[:], p[:IssuerSize])
	p = p[IssuerSize:]
	s.Version = binary.BigEndian.Uint64(p[:8])
	n := int(p[8])
	p = p[9:]
	if n == 0 || n > MaxPurposeLen || len(p) < n+4+SignatureSize {
		return nil, ErrBadEnvelope
	}
	s.Purpose = string(p[:n])
	if !validName(s.Purpose, MaxPurposeLen, true) {
		return nil, ErrBadEnvelope
	}
	p = p[n:]
	bl := binary.BigEndian.Uint32(p[:4])
	p = p[4:]
	if bl > MaxSignedBody || uint64(len(p)) != uint64(bl)+SignatureSize {
		return nil, ErrBadEnvelope
	}
	s.Body = p[:bl]
	copy(s.Signature[:], p[bl:])
	return s, nil
}

// VerifySigned decodes b and checks that a CA of pool, valid at now and not
// blocklisted (bl may be nil), signed it for purpose. Errors: ErrBadEnvelope,
// ErrWrongPurpose, ErrUnknownCA, ErrBadSignature, ErrExpired, ErrNotYetValid,
// ErrBlocklisted (Reason labels them).
func VerifySigned(b []byte, purpose string, pool *CAPool, now time.Time, bl *Blocklist) (*Signed, error) {
	s, err := DecodeSigned(b)
	if err != nil {
		return nil, err
	}
	if s.Purpose != purpose {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongPurpose, s.Purpose, purpose)
	}
	e, ok := pool.lookup(s.Issuer)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownCA, s.Issuer)
	}
	if bl.Contains(e.fp) {
		return nil, fmt.Errorf("%w: CA %q", ErrBlocklisted, e.cert.Name)
	}
	if err := checkValidity("CA", e.cert, now); err != nil {
		return nil, err
	}
	msg, err := s.appendUnsigned([]byte(signedContext))
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(ed25519.PublicKey(e.cert.PublicKey[:]), msg, s.Signature[:]) {
		return nil, ErrBadSignature
	}
	return s, nil
}
