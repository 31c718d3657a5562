package cryptotest

import (
	"testing"

	"github.com/weftnet/weft/crypto"
)

// NewIdentity returns an identity with a freshly generated private key, closed at the
// end of tb.
func NewIdentity(tb testing.TB) *crypto.Identity {
	tb.Helper()
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	id := crypto.NewIdentity(priv)
	tb.Cleanup(id.Close)
	return id
}
