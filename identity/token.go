package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A join token lets one host enroll with a CA host (discovery/enroll): `weft token create`
// prints it, `weft agent --join-token` spends it. Its text form is
//
//	weft1.BASE64URL(version | CA fingerprint (32) | token id (16) | secret (32))
//
// The CA fingerprint pins the CA: the joiner accepts only a CA host that proves it holds
// that CA's key. The id names the token in `weft token list` and revocations; the secret
// proves the token (an HMAC over the enrollment session, never sent). No padding, no
// whitespace, one version: a token is parsed strictly so that it has one text form.

// TokenPrefix starts every join token's text form.
const TokenPrefix = "weft1."

const (
	tokenVersion = 1
	// TokenIDSize and TokenSecretSize are the sizes of a token's id and secret.
	TokenIDSize     = 16
	TokenSecretSize = 32
	tokenLen        = 1 + sha256.Size + TokenIDSize + TokenSecretSize
	// maxTokenText bounds the text a parser looks at.
	maxTokenText = 256
)

// TokenID names a join token; it is not secret.
type TokenID [TokenIDSize]byte

// String is the id in hex, as `weft token list` and `weft token revoke` show and take it.
func (id TokenID) String() string { return hex.EncodeToString(id[:]) }

// ParseTokenID parses the hex form of a token id.
func ParseTokenID(s string) (TokenID, error) {
	var id TokenID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != TokenIDSize {
		return id, fmt.Errorf("token id %q: want %d hex digits (as `weft token list` shows)", s, 2*TokenIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// Token is a parsed join token.
type Token struct {
	// CA is the fingerprint of the CA the token enrolls under.
	CA Fingerprint
	// ID names the token.
	ID TokenID
	// Secret proves the token.
	Secret [TokenSecretSize]byte
}

// ErrTokenMalformed is returned for a token whose text is not a valid join token.
var ErrTokenMalformed = errors.New("malformed join token")

// NewToken draws a fresh token id and secret for the CA with fingerprint ca.
func NewToken(ca Fingerprint) (Token, error) {
	t := Token{CA: ca}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return t, err
	}
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return t, err
	}
	return t, nil
}

// String is the token's text form (weft1.…); it contains the secret.
func (t Token) String() string {
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenVersion)
	b = append(b, t.CA[:]...)
	b = append(b, t.ID[:]...)
	b = append(b, t.Secret[:]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken parses the text form of a join token. It accepts exactly what String
// produces: the prefix, unpadded base64url with no trailing bits set, the one version.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) > maxTokenText {
		return t, fmt.Errorf("%w: %d characters (a token has %d): copy the whole line `weft token create` printed", ErrTokenMalformed, len(s), len(TokenPrefix)+base64.RawURLEncoding.EncodedLen(tokenLen))
	}
	body, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w: it does not start with %q: pass the token `weft token create` printed on a CA host", ErrTokenMalformed, TokenPrefix)
	}
	// The decoder skips \r and \n; a token has none.
	b, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || strings.ContainsAny(body, "\r\n") || len(b) != tokenLen {
		return t, fmt.Errorf("%w: it is truncated or altered: copy the whole token `weft token create` printed", ErrTokenMalformed)
	}
	if b[0] != tokenVersion {
		return t, fmt.Errorf("%w: version %d (this weft knows %d): create a token with this weft's `weft token create`", ErrTokenMalformed, b[0], tokenVersion)
	}
	b = b[1:]
	copy(t.CA[:], b)
	b = b[sha256.Size:]
	copy(t.ID[:], b)
	copy(t.Secret[:], b[TokenIDSize:])
	if t.Secret == ([TokenSecretSize]byte{}) {
		return t, fmt.Errorf("%w: its secret is all zeros", ErrTokenMalformed)
	}
	return t, nil
}
