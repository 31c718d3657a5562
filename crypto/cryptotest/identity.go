package cryptotest

import (
	"testing"

	"github.com/weftnet/weft/crypto"
)

// NewIdentity returns an identity with a freshly generated private key, closed at the
// end of tb.
func NewIdentity(tb testing.TB) *crypto.Identity {
	tb.Helper()
	id := crypto.NewIdentity(NewKey(tb))
	tb.Cleanup(id.Close)
	return id
}

// NewKey returns a freshly generated private key; a failure fails tb.
func NewKey(tb testing.TB) crypto.PrivateKey {
	tb.Helper()
	k, err := crypto.GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
