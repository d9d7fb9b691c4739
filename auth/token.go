package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HMAC secret accepted, in bytes: RFC 7518 asks for a key at
// least as long as the hash, 256 bits for HS256.
const MinSecretLen = 32

// Errors returned by Verify; match them with errors.Is. Their text is for logs, not for
// clients.
var (
	ErrInvalid = errors.New("auth: invalid token") // malformed, unsigned, wrong key or algorithm
	ErrExpired = errors.New("auth: token expired") // at or past its exp
)

// Grants is crier's claim in a token, under the name "crier": the topics the bearer may
// follow and publish to, each an exact name or a pattern.
//
//	"crier": {"subscribe": ["user/42"], "publish": ["user/*"]}
type Grants struct {
	Subscribe Patterns `json:"subscribe,omitempty"`
	Publish   Patterns `json:"publish,omitempty"`
}

// claims is the payload crier reads: the registered claims and its own.
type claims struct {
	jwt.RegisteredClaims
	Crier Grants `json:"crier"`
}

// Token is a verified token.
type Token struct {
	Subject string    // the "sub" claim, if any; for logs
	Expires time.Time // the "exp" claim, always set
	Grants  Grants
}

// CanSubscribe reports whether the token grants following topic.
func (t *Token) CanSubscribe(topic string) bool { return t.Grants.Subscribe.Match(topic) }

// CanPublish reports whether the token grants publishing to topic.
func (t *Token) CanPublish(topic string) bool { return t.Grants.Publish.Match(topic) }

// Keys are what tokens are verified with. A token's "alg" picks the key: HS256, HS384
// and HS512 use Secret; RS256, RS384 and RS512 an RSA Public key; ES256, ES384 and ES512
// an ECDSA Public key on P-256, P-384 and P-521 respectively. An algorithm without its
// key is refused, so a token can never make crier use a public key as an HMAC secret,
// and "none" is never accepted.
//
// Audience and Issuer, when set, are required of every token too: its "aud" must list
// Audience and its "iss" must equal Issuer, so that a token that the same key signed for
// another service is refused.
type Keys struct {
	Secret   []byte           // HMAC secret, at least MinSecretLen bytes; nil for none
	Public   crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey; nil for none
	Audience string           // required "aud" entry; empty: not checked
	Issuer   string           // required "iss"; empty: not checked
}

// Verifier checks tokens. Safe for concurrent use.
type Verifier struct {
	keys   Keys
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for keys; now is its clock (nil: time.Now).
func NewVerifier(keys Keys, now func() time.Time) (*Verifier, error) {
	if now == nil {
		now = time.Now
	}
	var algs []string
	if keys.Secret != nil {
		if len(keys.Secret) < MinSecretLen {
			return nil, fmt.Errorf("auth: the HMAC secret must be at least %d bytes", MinSecretLen)
		}
		algs = append(algs, "HS256", "HS384", "HS512")
	}
	switch k := keys.Public.(type) {
	case nil:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("auth: the RSA key must be at least 2048 bits")
		}
		algs = append(algs, "RS256", "RS384", "RS512")
	case *ecdsa.PublicKey:
		alg, ok := ecdsaAlg(k.Curve)
		if !ok {
			return nil, errors.New("auth: the ECDSA key must be on P-256, P-384 or P-521")
		}
		algs = append(algs, alg)
	default:
		return nil, fmt.Errorf("auth: unsupported public key type %T", keys.Public)
	}
	if len(algs) == 0 {
		return nil, errors.New("auth: no key")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(now),
	}
	if keys.Audience != "" {
		opts = append(opts, jwt.WithAudience(keys.Audience))
	}
	if keys.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(keys.Issuer))
	}
	return &Verifier{keys: keys, parser: jwt.NewParser(opts...)}, nil
}

func ecdsaAlg(c elliptic.Curve) (string, bool) {
	switch c {
	case elliptic.P256():
		return "ES256", true
	case elliptic.P384():
		return "ES384", true
	case elliptic.P521():
		return "ES512", true
	}
	return "", false
}

// Verify checks s's signature and claims and returns what it grants. Errors wrap
// ErrInvalid or ErrExpired. A token is valid while the clock is before its "exp" (required)
// and not before its "nbf" (optional); there is no leeway for clock skew.
func (v *Verifier) Verify(s string) (*Token, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(s, &c, v.key)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Token{Subject: c.Subject, Expires: c.ExpiresAt.Time, Grants: c.Crier}, nil
}

// key picks the key for t's algorithm. The parser has already refused any algorithm not
// listed for the configured keys; checking the method's type again here keeps a future
// change to that list from pairing a key with the wrong algorithm.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
		return nil, errors.New("critical header extensions are not supported")
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.keys.Secret != nil {
			return v.keys.Secret, nil
		}
	case *jwt.SigningMethodRSA:
		if k, ok := v.keys.Public.(*rsa.PublicKey); ok {
			return k, nil
		}
	case *jwt.SigningMethodECDSA:
		if k, ok := v.keys.Public.(*ecdsa.PublicKey); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
}

// Sign returns an HS256 token signed with secret that grants g until now+ttl. subject,
// when not empty, becomes the "sub" claim. It is what `crier token` prints; a backend
// would usually sign with its own JWT library.
func Sign(secret []byte, g Grants, subject string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("auth: the HMAC secret must be at least %d bytes", MinSecretLen)
	}
	if ttl <= 0 {
		return "", errors.New("auth: the lifetime must be positive")
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Crier: g,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
