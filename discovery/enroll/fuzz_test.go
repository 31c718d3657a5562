package enroll

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// seeds returns one valid encoding of each message.
func seeds(f *testing.F) (hello, enroll, renew, ok, refused []byte) {
	now := time.Now()
	ca, key, err := identity.NewCA(identity.CASpec{Name: "c", NotBefore: now, NotAfter: now.Add(time.Hour)}, nil)
	if err != nil {
		f.Fatal(err)
	}
	hc, err := identity.Sign(ca, key, identity.HostSpec{Name: "h", PublicKey: crypto.PublicKey{1}, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.42.1.0/24")}, NotBefore: now, NotAfter: now.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	must := func(b []byte, err error) []byte {
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	hello = must((&ServerHello{CA: ca, Ephemeral: [32]byte{2}, Sig: [64]byte{3}}).MarshalBinary())
	enroll = must((&Request{Kind: KindEnroll, Name: "h", PublicKey: crypto.PublicKey{1}, TokenID: identity.TokenID{4}, MAC: [32]byte{5}}).MarshalBinary())
	renew = must((&Request{Kind: KindRenew, Name: "h", PublicKey: crypto.PublicKey{1}, Cert: hc, MAC: [32]byte{5}}).MarshalBinary())
	ok = must((&Response{Cert: hc, GossipKey: make([]byte, 32), Cluster: netip.MustParsePrefix("10.42.0.0/16")}).MarshalBinary())
	refused = must((&Response{Refusal: ReasonTokenUsed}).MarshalBinary())
	return
}

type message interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip: a message that parses encodes to the same bytes, which parse again.
func roundTrip(t *testing.T, b []byte, fresh func() message) {
	m := fresh()
	if err := m.UnmarshalBinary(b); err != nil {
		return
	}
	out, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("parsed but does not encode: %v", err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("not canonical:\n in %x\nout %x", b, out)
	}
	if err := fresh().UnmarshalBinary(out); err != nil {
		t.Fatalf("parse→encode→parse: %v", err)
	}
}

func FuzzServerHello(f *testing.F) {
	h, _, _, _, _ := seeds(f)
	f.Add(h)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, func() message { return &ServerHello{} }) })
}

func FuzzRequest(f *testing.F) {
	_, e, r, _, _ := seeds(f)
	f.Add(e)
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, func() message { return &Request{} }) })
}

func FuzzResponse(f *testing.F) {
	_, _, _, ok, refused := seeds(f)
	f.Add(ok)
	f.Add(refused)
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, b, func() message { return &Response{} }) })
}
