package crypto

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestIdentity_Admit(t *testing.T) {
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	p := newPair(t, PresharedKey{})
	init := make([]byte, MessageInitiationSize)
	if _, err := p.ha.CreateInitiation(init, 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		msg       []byte
		underLoad bool
		want      Verdict
	}{
		{"valid, not under load", init, false, VerdictAccept},
		{"valid without mac2, under load", init, true, VerdictCookie},
		{"bad mac1", flip(init, initMAC1+1), false, VerdictInvalid},
		{"bad mac1 under load", flip(init, initEphemeral), true, VerdictInvalid},
		{"truncated", init[:100], false, VerdictInvalid},
		{"transport type", []byte{4, 0, 0, 0}, false, VerdictInvalid},
		{"empty", nil, true, VerdictInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.b.Admit(tc.msg, src, tc.underLoad); got != tc.want {
				t.Fatalf("Admit = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestIdentity_CookieFlow: under load the responder answers with a cookie;
// the initiator's next initiation carries mac2 and is admitted; the cookie
// is bound to the source address and expires with the secret.
func TestIdentity_CookieFlow(t *testing.T) {
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	p := newPair(t, PresharedKey{})
	init := make([]byte, MessageInitiationSize)
	p.ha.CreateInitiation(init, 1)
	if v := p.b.Admit(init, src, true); v != VerdictCookie {
		t.Fatalf("first Admit = %v", v)
	}
	reply := make([]byte, 100)
	n, err := p.b.CreateCookieReply(reply, init, src)
	if err != nil || n != MessageCookieReplySize {
		t.Fatalf("CreateCookieReply: %d %v", n, err)
	}
	if reply[0] != MessageCookieReplyType || reply[4] != 1 {
		t.Fatalf("reply header %x", reply[:8])
	}
	if err := p.ha.ConsumeCookieReply(reply[:n]); err != nil {
		t.Fatalf("ConsumeCookieReply: %v", err)
	}

	p.clock.advance(time.Second)
	p.ha.CreateInitiation(init, 2)
	if isZero(init[initMAC2:]) {
		t.Fatal("initiation after a cookie has no mac2")
	}
	if v := p.b.Admit(init, src, true); v != VerdictAccept {
		t.Fatalf("Admit with mac2 = %v", v)
	}
	if _, err := p.b.ConsumeInitiation(init, p.lookupB); err != nil {
		t.Fatalf("ConsumeInitiation with mac2: %v", err)
	}
	other := netip.MustParseAddrPort("198.51.100.8:40000")
	if v := p.b.Admit(init, other, true); v != VerdictCookie {
		t.Fatalf("Admit from another source = %v, want cookie", v)
	}

	// Past CookieRefreshTime the responder's secret is stale: mac2 fails.
	p.clock.advance(CookieRefreshTime + time.Second)
	if v := p.b.Admit(init, src, true); v != VerdictCookie {
		t.Fatalf("Admit after secret expiry = %v, want cookie", v)
	}
	// And the initiator stops sending mac2 once its cookie is old.
	p.ha.CreateInitiation(init, 3)
	if !isZero(init[initMAC2:]) {
		t.Fatal("expired cookie still used for mac2")
	}
}

func TestIdentity_CookieSecretRotates(t *testing.T) {
	p := newPair(t, PresharedKey{})
	src := netip.MustParseAddrPort("198.51.100.7:1")
	init := make([]byte, MessageInitiationSize)
	p.ha.CreateInitiation(init, 1)
	reply := make([]byte, MessageCookieReplySize)
	p.b.CreateCookieReply(reply, init, src)
	first := p.b.secret
	p.clock.advance(CookieRefreshTime / 2)
	p.b.CreateCookieReply(reply, init, src)
	if p.b.secret != first {
		t.Fatal("secret rotated before CookieRefreshTime")
	}
	p.clock.advance(CookieRefreshTime)
	p.b.CreateCookieReply(reply, init, src)
	if p.b.secret == first {
		t.Fatal("secret not rotated after CookieRefreshTime")
	}
}

// initiationWithMAC2 has b answer an initiation of a from src with a cookie
// reply and returns a's next initiation, which carries mac2 for src.
func initiationWithMAC2(t *testing.T, p *pair, src netip.AddrPort) []byte {
	t.Helper()
	init := make([]byte, MessageInitiationSize)
	if _, err := p.ha.CreateInitiation(init, 1); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, MessageCookieReplySize)
	if _, err := p.b.CreateCookieReply(reply, init, src); err != nil {
		t.Fatal(err)
	}
	if err := p.ha.ConsumeCookieReply(reply); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ha.CreateInitiation(init, 2); err != nil {
		t.Fatal(err)
	}
	if isZero(init[initMAC2:]) {
		t.Fatal("initiation after a cookie reply has no mac2")
	}
	return init
}

func TestIdentity_AdmitRateLimit(t *testing.T) {
	p := newPair(t, PresharedKey{})
	src := netip.MustParseAddrPort("198.51.100.7:1")
	init := initiationWithMAC2(t, p, src)
	accepts, drops := 0, 0
	for range 50 { // wireguard-go's limiter: a burst of 5, then 20/s
		switch p.b.Admit(init, src, true) {
		case VerdictAccept:
			accepts++
		case VerdictDrop:
			drops++
		}
	}
	if accepts < 5 || drops == 0 || accepts+drops != 50 {
		t.Fatalf("50 at once from one source: %d accepted, %d dropped; want the burst of 5 (or more) accepted, the rest dropped",
			accepts, drops)
	}
	other := netip.MustParseAddrPort("198.51.100.8:1")
	if v := p.b.Admit(initiationWithMAC2(t, p, other), other, true); v != VerdictAccept {
		t.Fatalf("another source under load: %v, want accept (the limit is per source)", v)
	}
	if v := p.b.Admit(init, src, false); v != VerdictAccept {
		t.Fatalf("not under load: %v, want accept (no rate limiting)", v)
	}
}

func TestIdentity_CreateCookieReplyErrors(t *testing.T) {
	p := newPair(t, PresharedKey{})
	src := netip.MustParseAddrPort("198.51.100.7:1")
	init := make([]byte, MessageInitiationSize)
	p.ha.CreateInitiation(init, 1)
	for _, tc := range []struct {
		name     string
		dst, msg []byte
		want     error
	}{
		{"small dst", make([]byte, 10), init, ErrShortMessage},
		{"truncated msg", make([]byte, 64), init[:50], ErrShortMessage},
		{"transport msg", make([]byte, 64), make([]byte, 148), ErrWrongType},
	} {
		if _, err := p.b.CreateCookieReply(tc.dst, tc.msg, src); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIdentity_AdmitAfterClose(t *testing.T) {
	p := newPair(t, PresharedKey{})
	src := netip.MustParseAddrPort("198.51.100.7:1")
	init := initiationWithMAC2(t, p, src)
	if v := p.b.Admit(init, src, true); v != VerdictAccept {
		t.Fatalf("Admit under load before Close = %v, want accept", v)
	}
	p.b.Close()
	p.b.Close()
	if v := p.b.Admit(init, src, true); v != VerdictDrop {
		t.Fatalf("Admit under load after Close = %v, want drop", v)
	}
}
