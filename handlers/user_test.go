package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// A stream's user is its token's sub wherever a token is given, public topics included;
// without one (or with one that does not verify, on public topics) it is anonymous.
func TestStreamUserIsTheTokensSub(t *testing.T) {
	seen := make(chan broker.Activity, 64)
	s := privateServer(t, broker.Options{Observe: func(a broker.Activity) { seen <- a }}, handlers.Options{}, nil)
	tokenFor := func(sub string, subscribe ...string) http.Header {
		c := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "crier": map[string]any{"subscribe": subscribe}}
		if sub != "" {
			c["sub"] = sub
		}
		return bearerH(hs256(t, c))
	}
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   string // "": anonymous, the subscriber id
	}{
		{"public, no token", "?topic=news", nil, ""},
		{"no topic, token", "", tokenFor("alice"), "alice"},
		{"public, token", "?topic=news", tokenFor("alice"), "alice"},
		{"public, token in the query", "?topic=news&access_token=" + hs256(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}), nil, "bob"},
		{"public, garbage token", "?topic=news", bearerH("garbage"), ""},
		{"public, token without sub", "?topic=news", tokenFor(""), ""},
		{"private, token", "?topic=user/carol", tokenFor("carol", "user/carol"), "carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := s.open(t, tc.query, tc.header)
			defer st.close()
			// The broker observes the attach before the response's head is written; the
			// previous case's disconnect may come before or after it.
			a := <-seen
			for a.Kind == broker.ActivityDisconnect {
				a = <-seen
			}
			want := tc.want
			if want == "" {
				want = a.Subscriber
			}
			if a.Kind != broker.ActivityConnect || a.User != want || a.Subscriber == "" {
				t.Errorf("got %+v, want a connect of user %q", a, want)
			}
		})
	}
}
