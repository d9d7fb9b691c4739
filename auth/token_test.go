package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crierhq/crier/auth"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock  = func() time.Time { return now }
)

// rsaKey is generated once: 2048-bit keys take a while.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// claims builds a payload: exp one hour from now unless overridden.
func claims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "42",
		"exp":   now.Add(time.Hour).Unix(),
		"crier": map[string]any{"subscribe": []string{"user/42"}, "publish": []string{"user/*"}},
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds a token by hand, for headers no library would write.
func unsigned(header, payload, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + sig
}

func verifier(t testing.TB, keys auth.Keys) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(keys, clock)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	rk := rsaKey()
	ek := ecKey(t, elliptic.P256())
	ek384 := ecKey(t, elliptic.P384())
	pubDER, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	hmacOnly := verifier(t, auth.Keys{Secret: secret})
	rsaOnly := verifier(t, auth.Keys{Public: &rk.PublicKey})
	ecOnly := verifier(t, auth.Keys{Public: &ek.PublicKey})
	both := verifier(t, auth.Keys{Secret: secret, Public: &rk.PublicKey})
	scoped := verifier(t, auth.Keys{Secret: secret, Audience: "crier", Issuer: "https://id.example"})
	hs := func(extra map[string]any) string { return sign(t, jwt.SigningMethodHS256, secret, claims(extra)) }

	hsValid := sign(t, jwt.SigningMethodHS256, secret, claims(nil))
	tests := []struct {
		name  string
		v     *auth.Verifier
		token string
		want  error // nil: accepted
	}{
		{"HS256 valid", hmacOnly, hsValid, nil},
		{"HS512 valid", hmacOnly, sign(t, jwt.SigningMethodHS512, secret, claims(nil)), nil},
		{"RS256 valid", rsaOnly, sign(t, jwt.SigningMethodRS256, rk, claims(nil)), nil},
		{"ES256 valid", ecOnly, sign(t, jwt.SigningMethodES256, ek, claims(nil)), nil},
		{"HS256 with both keys", both, hsValid, nil},
		{"RS256 with both keys", both, sign(t, jwt.SigningMethodRS256, rk, claims(nil)), nil},

		{"expired", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": now.Add(-time.Second).Unix()})), auth.ErrExpired},
		{"expires this second", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": now.Unix()})), auth.ErrExpired},
		{"no exp", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": nil})), auth.ErrInvalid},
		{"exp not a number", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"exp": "tomorrow"})), auth.ErrInvalid},
		{"not yet valid", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), auth.ErrInvalid},
		{"crier claim of the wrong shape", hmacOnly, sign(t, jwt.SigningMethodHS256, secret, claims(map[string]any{"crier": []string{"user/42"}})), auth.ErrInvalid},

		{"audience and issuer", scoped, hs(map[string]any{"aud": "crier", "iss": "https://id.example"}), nil},
		{"audience among several", scoped, hs(map[string]any{"aud": []string{"billing", "crier"}, "iss": "https://id.example"}), nil},
		{"audience and issuer unchecked when not set", hmacOnly, hs(map[string]any{"aud": "billing", "iss": "elsewhere"}), nil},
		{"no audience", scoped, hs(map[string]any{"iss": "https://id.example"}), auth.ErrInvalid},
		{"another audience", scoped, hs(map[string]any{"aud": "billing", "iss": "https://id.example"}), auth.ErrInvalid},
		{"audience of another case", scoped, hs(map[string]any{"aud": "Crier", "iss": "https://id.example"}), auth.ErrInvalid},
		{"no issuer", scoped, hs(map[string]any{"aud": "crier"}), auth.ErrInvalid},
		{"another issuer", scoped, hs(map[string]any{"aud": "crier", "iss": "https://id.example.evil"}), auth.ErrInvalid},

		{"wrong secret", hmacOnly, sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes or more"), claims(nil)), auth.ErrInvalid},
		{"wrong RSA key", rsaOnly, sign(t, jwt.SigningMethodRS256, mustRSA(t), claims(nil)), auth.ErrInvalid},
		{"wrong EC key", ecOnly, sign(t, jwt.SigningMethodES256, ecKey(t, elliptic.P256()), claims(nil)), auth.ErrInvalid},
		{"ES384 on a P-256 key", ecOnly, sign(t, jwt.SigningMethodES384, ek384, claims(nil)), auth.ErrInvalid},
		{"RS256 without an RSA key", hmacOnly, sign(t, jwt.SigningMethodRS256, rk, claims(nil)), auth.ErrInvalid},
		{"HS256 without a secret", rsaOnly, sign(t, jwt.SigningMethodHS256, secret, claims(nil)), auth.ErrInvalid},
		{"ES256 with an RSA key", rsaOnly, sign(t, jwt.SigningMethodES256, ek, claims(nil)), auth.ErrInvalid},
		// Algorithm confusion: an attacker signs HS256 with the (public) RSA key as secret.
		{"HS256 keyed with the public key PEM", rsaOnly, sign(t, jwt.SigningMethodHS256, pubPEM, claims(nil)), auth.ErrInvalid},
		{"HS256 keyed with the public key DER", rsaOnly, sign(t, jwt.SigningMethodHS256, pubDER, claims(nil)), auth.ErrInvalid},

		{"alg none", hmacOnly, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), auth.ErrInvalid},
		{"alg none by hand", hmacOnly, unsigned(`{"alg":"none","typ":"JWT"}`, `{"exp":9999999999,"crier":{"subscribe":["*"]}}`, ""), auth.ErrInvalid},
		{"alg None by hand", hmacOnly, unsigned(`{"alg":"None"}`, `{"exp":9999999999}`, ""), auth.ErrInvalid},
		{"no alg", hmacOnly, unsigned(`{"typ":"JWT"}`, `{"exp":9999999999}`, "c2ln"), auth.ErrInvalid},
		{"crit header", hmacOnly, signHeader(t, map[string]any{"crit": []string{"exp"}}), auth.ErrInvalid},
		{"HS256 signature stripped", hmacOnly, hsValid[:strings.LastIndexByte(hsValid, '.')+1], auth.ErrInvalid},

		{"empty", hmacOnly, "", auth.ErrInvalid},
		{"one segment", hmacOnly, "abc", auth.ErrInvalid},
		{"two segments", hmacOnly, "abc.def", auth.ErrInvalid},
		{"four segments", hmacOnly, hsValid + ".x", auth.ErrInvalid},
		{"garbage segments", hmacOnly, "a.b.c", auth.ErrInvalid},
		{"padded", hmacOnly, padded(hsValid), auth.ErrInvalid},
		{"bearer prefix left in", hmacOnly, "Bearer " + hsValid, auth.ErrInvalid},
		{"header not JSON", hmacOnly, unsigned(`alg=HS256`, `{}`, "c2ln"), auth.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.v.Verify(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want a valid token", err)
				}
				if tok.Subject != "42" || !tok.Expires.Equal(now.Add(time.Hour)) {
					t.Errorf("got subject %q, expiry %v", tok.Subject, tok.Expires)
				}
				if !tok.CanSubscribe("user/42") || tok.CanSubscribe("user/43") ||
					!tok.CanPublish("user/43") || tok.CanPublish("admin") {
					t.Errorf("got grants %+v", tok.Grants)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if tok != nil {
				t.Fatalf("Verify returned a token with an error")
			}
		})
	}
}

func mustRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signHeader signs a valid HS256 payload under a header with extra fields.
func signHeader(t testing.TB, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	for k, v := range extra {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// padded re-encodes every segment with base64 padding.
func padded(tok string) string {
	parts := strings.Split(tok, ".")
	for i, p := range parts {
		raw, _ := base64.RawURLEncoding.DecodeString(p)
		parts[i] = base64.URLEncoding.EncodeToString(raw)
	}
	return strings.Join(parts, ".")
}

func TestNewVerifierRefusesWeakKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys auth.Keys
	}{
		{"no key", auth.Keys{}},
		{"short secret", auth.Keys{Secret: []byte("short")}},
		{"empty secret", auth.Keys{Secret: []byte{}}},
		{"1024-bit RSA", auth.Keys{Public: &small.PublicKey}},
		{"P-224", auth.Keys{Public: &ecKey(t, elliptic.P224()).PublicKey}},
		{"not a key", auth.Keys{Public: "key"}},
	}
	for _, tt := range tests {
		if _, err := auth.NewVerifier(tt.keys, nil); err == nil {
			t.Errorf("%s: NewVerifier accepted it", tt.name)
		}
	}
}

func TestSign(t *testing.T) {
	g := auth.Grants{Subscribe: auth.Patterns{"user/42"}, Publish: auth.Patterns{"user/*"}}
	s, err := auth.Sign(secret, g, "42", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := verifier(t, auth.Keys{Secret: secret}).Verify(s)
	if err != nil {
		t.Fatalf("Verify(Sign(...)): %v", err)
	}
	if !tok.Expires.Equal(now.Add(time.Hour)) || tok.Subject != "42" ||
		tok.Grants.Subscribe.String() != "user/42" || tok.Grants.Publish.String() != "user/*" {
		t.Errorf("got %+v", tok)
	}
	if _, err := auth.Sign([]byte("short"), g, "", time.Hour, now); err == nil {
		t.Error("Sign accepted a short secret")
	}
	if _, err := auth.Sign(secret, g, "", 0, now); err == nil {
		t.Error("Sign accepted a zero lifetime")
	}
}

func TestParsePublicKey(t *testing.T) {
	rk := rsaKey()
	ek := ecKey(t, elliptic.P256())
	pkix := func(k any) []byte {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"RSA PKIX", pkix(&rk.PublicKey), true},
		{"RSA PKCS1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}), true},
		{"EC PKIX", pkix(&ek.PublicKey), true},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), false},
		{"not PEM", []byte("hello"), false},
		{"broken DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}), false},
	}
	for _, tt := range tests {
		_, err := auth.ParsePublicKey(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("%s: ParsePublicKey error = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// FuzzVerify feeds mutations of valid tokens to Verify: it must never panic, and must
// never accept anything but the exact token that was signed. (ES256 is left out: an
// ECDSA signature (r, s) has a twin (r, n-s) that verifies too, which changes the token's
// text but not what it grants.)
func FuzzVerify(f *testing.F) {
	v := verifier(f, auth.Keys{Secret: secret, Public: &rsaKey().PublicKey})
	valid := map[string]bool{
		sign(f, jwt.SigningMethodHS256, secret, claims(nil)):                                     true,
		sign(f, jwt.SigningMethodRS256, rsaKey(), claims(nil)):                                   true,
		sign(f, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}): true,
	}
	for tok := range valid {
		f.Add(tok)
	}
	f.Add(unsigned(`{"alg":"none"}`, `{"exp":9999999999}`, ""))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := v.Verify(s)
		if err == nil && !valid[s] {
			t.Fatalf("accepted a token that was never signed: %q (grants %+v)", s, tok.Grants)
		}
	})
}
