package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crierhq/crier/auth"
)

// Where a stream's token may come from, besides the Authorization header: EventSource
// cannot set headers.
const (
	tokenParam  = "access_token" // query parameter (RFC 6750 section 2.3)
	tokenCookie = "crier_token"  // cookie set by the application's backend
)

// errTokenExpired is the cause of a stream context ended by its token's expiry.
var errTokenExpired = errors.New("token expired")

// authorizer decides who may follow private topics and who may publish.
type authorizer struct {
	private      auth.Patterns  // topics that need a token; empty: all public
	tokens       *auth.Verifier // nil: no JWT is accepted
	publishToken []byte         // the static token, which may publish anything
}

const realm = `Bearer realm="crier"`

func unauthorized(msg string) error {
	return &httpError{status: http.StatusUnauthorized, msg: msg, challenge: realm}
}

func needToken(topic string) error {
	return unauthorized("the topic " + strconv.Quote(topic) + " is private: give a token (Authorization: Bearer, the " +
		tokenCookie + " cookie or the " + tokenParam + " parameter)")
}

func invalidToken(err error) error {
	msg := "the token is not valid"
	if errors.Is(err, auth.ErrExpired) {
		msg = "the token has expired"
	}
	return &httpError{status: http.StatusUnauthorized, msg: msg, challenge: realm + `, error="invalid_token"`}
}

func notGranted(msg string) error {
	return &httpError{status: http.StatusForbidden, msg: msg, challenge: realm + `, error="insufficient_scope"`}
}

// stream checks that r may follow topics. It returns the stream's user (its token's sub;
// "" for none) and when the token that granted the private topics expires, or the zero
// time when none of them is private. A token given for public topics only names the
// user: one that does not verify is ignored there (the stream is anonymous), as it was
// before tokens named users.
func (a *authorizer) stream(r *http.Request, topics []string) (user string, expires time.Time, err error) {
	if a == nil {
		return "", time.Time{}, nil
	}
	var private []string
	for _, t := range topics {
		if a.private.Match(t) {
			private = append(private, t)
		}
	}
	raw := streamToken(r)
	if len(private) == 0 {
		if raw != "" && a.tokens != nil {
			if tok, err := a.tokens.Verify(raw); err == nil {
				user = tok.Subject
			}
		}
		return user, time.Time{}, nil
	}
	if raw == "" {
		return "", time.Time{}, needToken(private[0])
	}
	tok, err := a.tokens.Verify(raw)
	if err != nil {
		return "", time.Time{}, invalidToken(err)
	}
	for _, t := range private {
		if !tok.CanSubscribe(t) {
			return "", time.Time{}, notGranted("the token does not grant the topic " + strconv.Quote(t))
		}
	}
	return tok.Subject, tok.Expires, nil
}

// read checks that r may read what topic holds (its history, who is in it) without
// following it: as for a stream, and the publish token may read every topic.
func (a *authorizer) read(r *http.Request, topic string) error {
	if raw := streamToken(r); a != nil && raw != "" && subtle.ConstantTimeCompare([]byte(raw), a.publishToken) == 1 {
		return nil
	}
	_, _, err := a.stream(r, []string{topic})
	return err
}

// publisherOf names who publishes with tok (nil: the static token), for the scope of
// idempotency keys: the static token is one publisher, a JWT's subject another.
func publisherOf(tok *auth.Token) string {
	if tok == nil {
		return ""
	}
	return "sub:" + tok.Subject
}

// streamToken finds a stream's token: the Authorization header first, then the query
// parameter, then the cookie; the explicit sources win over the ambient one.
func streamToken(r *http.Request) string {
	if tok, ok := bearer(r); ok {
		return tok
	}
	if tok := r.URL.Query().Get(tokenParam); tok != "" {
		return tok
	}
	if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		return c.Value
	}
	return ""
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// publisher checks a publish's bearer token: the static token may publish anything; a
// JWT, when tokens are configured, only to the topics its publish grant lists (see
// publishTo). Missing: 401. A JWT that fails verification: 401. Anything else: 403.
// The returned token is nil for the static token.
func (a *authorizer) publisher(r *http.Request) (*auth.Token, error) {
	raw, ok := bearer(r)
	if !ok {
		return nil, unauthorized("a bearer token is required (Authorization: Bearer <token>)")
	}
	if subtle.ConstantTimeCompare([]byte(raw), a.publishToken) == 1 {
		return nil, nil
	}
	if a.tokens == nil || strings.Count(raw, ".") != 2 {
		return nil, reject(http.StatusForbidden, "the bearer token is not valid")
	}
	tok, err := a.tokens.Verify(raw)
	if err != nil {
		return nil, invalidToken(err)
	}
	return tok, nil
}

// publishTo checks that tok (nil: the static token) may publish to topic ("" broadcasts).
func publishTo(tok *auth.Token, topic string) error {
	switch {
	case tok == nil:
		return nil
	case topic == "":
		return notGranted("a token scoped to topics cannot broadcast; give a topic")
	case !tok.CanPublish(topic):
		return notGranted("the token does not grant publishing to the topic " + strconv.Quote(topic))
	}
	return nil
}

// untilExpiry returns r with a context that ends at expires (the zero time: never), and
// a function to release it. A stream served with it ends when its token does.
func untilExpiry(r *http.Request, expires time.Time) (*http.Request, context.CancelFunc) {
	if expires.IsZero() {
		return r, func() {}
	}
	ctx, cancel := context.WithDeadlineCause(r.Context(), expires, errTokenExpired)
	return r.WithContext(ctx), cancel
}
