package enroll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// Wire format: every message is a frame, a big-endian uint16 length and that many bytes;
// lengths inside a message are uint8 or uint16 as noted. A parser takes exactly the bytes it
// is given: short, long or trailing input is an error.

const (
	// MaxMessage bounds a frame's body; the largest message (a request carrying a
	// certificate) is well under it.
	MaxMessage = 4096
	// maxCert bounds an encoded certificate inside a message.
	maxCert = 2048
	// protoVersion is the first byte of a ServerHello.
	protoVersion = 1
	macSize      = 32
	sigSize      = 64
)

// Request kinds.
const (
	KindEnroll byte = 1 // prove a token
	KindRenew  byte = 2 // prove the key of a current certificate
)

// ErrMalformed: a message that does not parse.
var ErrMalformed = errors.New("malformed enrollment message")

// ServerHello is the CA host's first message: its CA certificate, a fresh X25519 public key
// and the CA key's signature over the session's exporter value and that key.
type ServerHello struct {
	CA        *identity.Certificate
	Ephemeral [32]byte
	Sig       [sigSize]byte
}

// Request is the joiner's message.
type Request struct {
	Kind      byte
	Name      string
	PublicKey crypto.PublicKey
	TokenID   identity.TokenID      // KindEnroll
	Cert      *identity.Certificate // KindRenew: the current certificate
	MAC       [macSize]byte
}

// Response is the CA host's answer: OK with the grant, or a refusal reason code.
type Response struct {
	Refusal   Reason // 0: OK
	Cert      *identity.Certificate
	GossipKey []byte
	Cluster   netip.Prefix
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if r.err || n > len(r.b) {
		r.err = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16() int {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (r *reader) cert(kind identity.Kind) *identity.Certificate {
	n := r.u16()
	if n > maxCert {
		r.err = true
	}
	b := r.take(n)
	if r.err {
		return nil
	}
	c, err := identity.ParseCertificate(b)
	if err != nil || c.Kind != kind {
		r.err = true
		return nil
	}
	return c
}

func (r *reader) done(what string) error {
	if r.err || len(r.b) != 0 {
		return fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	return nil
}

func appendCert(b []byte, c *identity.Certificate) ([]byte, error) {
	cb, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(cb) > maxCert {
		return nil, fmt.Errorf("%w: certificate of %d bytes", ErrMalformed, len(cb))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(cb)))
	return append(b, cb...), nil
}

// MarshalBinary encodes h.
func (h *ServerHello) MarshalBinary() ([]byte, error) {
	b, err := appendCert([]byte{protoVersion}, h.CA)
	if err != nil {
		return nil, err
	}
	b = append(b, h.Ephemeral[:]...)
	return append(b, h.Sig[:]...), nil
}

// UnmarshalBinary parses a ServerHello.
func (h *ServerHello) UnmarshalBinary(b []byte) error {
	r := &reader{b: b}
	if r.u8() != protoVersion {
		return fmt.Errorf("%w: unknown protocol version (upgrade weft on this host or on the CA host)", ErrMalformed)
	}
	h.CA = r.cert(identity.KindCA)
	copy(h.Ephemeral[:], r.take(32))
	copy(h.Sig[:], r.take(sigSize))
	return r.done("server hello")
}

// unsigned is the request's encoding without its MAC: what the MAC covers.
func (q *Request) unsigned() ([]byte, error) {
	if len(q.Name) == 0 || len(q.Name) > identity.MaxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes", ErrMalformed, len(q.Name))
	}
	b := []byte{q.Kind, byte(len(q.Name))}
	b = append(b, q.Name...)
	b = append(b, q.PublicKey[:]...)
	switch q.Kind {
	case KindEnroll:
		b = append(b, q.TokenID[:]...)
	case KindRenew:
		var err error
		if b, err = appendCert(b, q.Cert); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: request kind %d", ErrMalformed, q.Kind)
	}
	return b, nil
}

// MarshalBinary encodes q.
func (q *Request) MarshalBinary() ([]byte, error) {
	b, err := q.unsigned()
	if err != nil {
		return nil, err
	}
	return append(b, q.MAC[:]...), nil
}

// UnmarshalBinary parses a Request.
func (q *Request) UnmarshalBinary(b []byte) error {
	r := &reader{b: b}
	q.Kind = byte(r.u8())
	n := r.u8()
	if n == 0 || n > identity.MaxNameLen {
		r.err = true
	}
	q.Name = string(r.take(n))
	copy(q.PublicKey[:], r.take(32))
	switch q.Kind {
	case KindEnroll:
		copy(q.TokenID[:], r.take(identity.TokenIDSize))
	case KindRenew:
		q.Cert = r.cert(identity.KindHost)
	default:
		r.err = true
	}
	copy(q.MAC[:], r.take(macSize))
	return r.done("request")
}

// MarshalBinary encodes p.
func (p *Response) MarshalBinary() ([]byte, error) {
	if p.Refusal != 0 {
		return []byte{byte(p.Refusal)}, nil
	}
	b, err := appendCert([]byte{0}, p.Cert)
	if err != nil {
		return nil, err
	}
	if !validGossipKey(len(p.GossipKey)) {
		return nil, fmt.Errorf("%w: gossip key of %d bytes", ErrMalformed, len(p.GossipKey))
	}
	b = append(b, byte(len(p.GossipKey)))
	b = append(b, p.GossipKey...)
	if !p.Cluster.IsValid() {
		return nil, fmt.Errorf("%w: no cluster CIDR", ErrMalformed)
	}
	return p.Cluster.AppendBinary(b)
}

// UnmarshalBinary parses a Response.
func (p *Response) UnmarshalBinary(b []byte) error {
	r := &reader{b: b}
	*p = Response{Refusal: Reason(r.u8())}
	if p.Refusal != 0 {
		if r.err || p.Refusal >= numReasons {
			r.err = true
		}
		return r.done("response")
	}
	p.Cert = r.cert(identity.KindHost)
	n := r.u8()
	if !validGossipKey(n) {
		r.err = true
	}
	p.GossipKey = append([]byte(nil), r.take(n)...)
	if r.err {
		return r.done("response")
	}
	// The rest is the cluster prefix (netip's binary form: address, then a bits byte):
	// an IPv4 or IPv6 address, never a zone (netip would drop it, so the bytes would not
	// be the only encoding of the response).
	if len(r.b) != 4+1 && len(r.b) != 16+1 {
		return fmt.Errorf("%w: response: cluster CIDR of %d bytes", ErrMalformed, len(r.b))
	}
	if err := p.Cluster.UnmarshalBinary(r.b); err != nil || !p.Cluster.IsValid() || p.Cluster != p.Cluster.Masked() {
		return fmt.Errorf("%w: response: cluster CIDR", ErrMalformed)
	}
	return nil
}

func validGossipKey(n int) bool { return n == 16 || n == 24 || n == 32 }

// writeFrame writes one frame holding body.
func writeFrame(w io.Writer, body []byte) error {
	if len(body) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(body))
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(body)), uint16(len(body)))
	_, err := w.Write(append(b, body...))
	return err
}

// errTooLarge: a frame longer than MaxMessage, refused before it is read.
var errTooLarge = errors.New("enrollment message too large")

// readFrame reads one frame of at most MaxMessage bytes.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxMessage {
		return nil, errTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
