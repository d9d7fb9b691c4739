package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

var (
	jwtSecret = []byte("handlers-test-secret-of-32-bytes")
	private   = auth.Patterns{"user/*", "admin"}
)

// grants builds a token's claims: crier grants and an expiry relative to now.
func grants(subscribe, publish []string, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":   "42",
		"exp":   time.Now().Add(ttl).Unix(),
		"crier": map[string]any{"subscribe": subscribe, "publish": publish},
	}
}

func signed(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256 signs with the server's secret.
func hs256(t testing.TB, c jwt.MapClaims) string {
	return signed(t, jwt.SigningMethodHS256, jwtSecret, c)
}

// privateServer runs crier with private topics user/* and admin, verifying HS256 with
// jwtSecret and, when pub is given, ES256 with it.
func privateServer(t *testing.T, bo broker.Options, ho handlers.Options, pub *ecdsa.PublicKey) *server {
	t.Helper()
	keys := auth.Keys{Secret: jwtSecret}
	if pub != nil {
		keys.Public = pub
	}
	v, err := auth.NewVerifier(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	ho.PrivateTopics, ho.Tokens = private, v
	return newServer(t, bo, ho)
}

func TestPrivateStreamAuthorization(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := privateServer(t, broker.Options{}, handlers.Options{}, &ec.PublicKey)

	valid := hs256(t, grants([]string{"user/42"}, nil, time.Hour))
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	cookie := func(tok string) http.Header { return http.Header{"Cookie": {"crier_token=" + tok}} }
	query := func(tok string) string { return "&access_token=" + url.QueryEscape(tok) }

	for _, tc := range []struct {
		name   string
		query  string // after ?topic=...
		header http.Header
		want   int
	}{
		{"public topic, no token", "topic=news", nil, 200},
		{"public topic, garbage token is not looked at", "topic=news", bearer("garbage"), 200},
		{"no topic at all", "", nil, 200},
		{"private, no token", "topic=user/42", nil, 401},
		{"exact private name, no token", "topic=admin", nil, 401},
		{"private, header", "topic=user/42", bearer(valid), 200},
		{"private, cookie", "topic=user/42", cookie(valid), 200},
		{"private, query", "topic=user/42" + query(valid), nil, 200},
		{"private and public", "topic=news&topic=user/42", bearer(valid), 200},
		{"private, ES256", "topic=user/42", bearer(signed(t, jwt.SigningMethodES256, ec, grants([]string{"user/42"}, nil, time.Hour))), 200},
		{"pattern grant", "topic=user/42/inbox", bearer(hs256(t, grants([]string{"user/42/*"}, nil, time.Hour))), 200},

		{"expired", "topic=user/42", bearer(hs256(t, grants([]string{"user/42"}, nil, -time.Second))), 401},
		{"wrong key", "topic=user/42", bearer(signed(t, jwt.SigningMethodHS256, []byte("not-the-server-secret-32-bytes!!"), grants([]string{"user/42"}, nil, time.Hour))), 401},
		{"wrong EC key", "topic=user/42", bearer(signed(t, jwt.SigningMethodES256, mustEC(t), grants([]string{"user/42"}, nil, time.Hour))), 401},
		{"malformed", "topic=user/42", bearer("not.a.jwt"), 401},
		{"truncated", "topic=user/42", bearer(valid[:len(valid)-4]), 401},
		{"alg none", "topic=user/42", bearer(signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, grants([]string{"*"}, nil, time.Hour))), 401},
		{"no exp", "topic=user/42", bearer(hs256(t, jwt.MapClaims{"crier": map[string]any{"subscribe": []string{"*"}}})), 401},
		{"bad cookie", "topic=user/42", cookie("x.y.z"), 401},

		{"wrong topic", "topic=user/43", bearer(valid), 403},
		{"one of two not granted", "topic=user/42&topic=user/43", bearer(valid), 403},
		{"a literal star is private too", "topic=" + url.QueryEscape("user/*"), bearer(valid), 403},
		{"publish grant only", "topic=user/42", bearer(hs256(t, grants(nil, []string{"user/42"}, time.Hour))), 403},
		{"no crier claim", "topic=user/42", bearer(hs256(t, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})), 403},

		// The header wins over the query parameter, which wins over the cookie.
		{"bad header, good cookie", "topic=user/42", http.Header{"Authorization": {"Bearer x.y.z"}, "Cookie": {"crier_token=" + valid}}, 401},
		{"good query, bad cookie", "topic=user/42" + query(valid), cookie("x.y.z"), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ""
			if tc.query != "" {
				q = "?" + tc.query
			}
			st, resp := s.try(t, q, tc.header)
			defer st.close()
			if resp.StatusCode != tc.want {
				var body []byte
				if resp.StatusCode != 200 { // a stream's body never ends
					body, _ = io.ReadAll(resp.Body)
				}
				t.Fatalf("got %s %s, want %d", resp.Status, body, tc.want)
			}
			if tc.want == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("Content-Type %q", ct)
				}
				return
			}
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] == "" {
				t.Errorf("error body: %v %v", body, err)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Errorf("WWW-Authenticate %q", ch)
			}
		})
	}
}

func mustEC(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPublishWithTokens(t *testing.T) {
	s := privateServer(t, broker.Options{}, handlers.Options{}, nil)
	plain := newServer(t, broker.Options{}, handlers.Options{}) // no JWT configured
	pub := hs256(t, grants([]string{"user/*"}, []string{"user/*"}, time.Hour))

	for _, tc := range []struct {
		name   string
		srv    *server
		header http.Header
		body   string
		want   int
	}{
		{"static token, private topic", s, bearerH(token), `{"topic":"user/42"}`, 200},
		{"static token, broadcast", s, bearerH(token), `{}`, 200},
		{"granted topic", s, bearerH(pub), `{"topic":"user/42"}`, 200},
		{"granted public topic", s, bearerH(hs256(t, grants(nil, []string{"news"}, time.Hour))), `{"topic":"news"}`, 200},

		{"missing", s, nil, `{"topic":"user/42"}`, 401},
		{"expired", s, bearerH(hs256(t, grants(nil, []string{"*"}, -time.Minute))), `{"topic":"user/42"}`, 401},
		{"wrong key", s, bearerH(signed(t, jwt.SigningMethodHS256, []byte("not-the-server-secret-32-bytes!!"), grants(nil, []string{"*"}, time.Hour))), `{"topic":"user/42"}`, 401},
		{"alg none", s, bearerH(signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, grants(nil, []string{"*"}, time.Hour))), `{"topic":"user/42"}`, 401},
		{"malformed JWT", s, bearerH("a.b.c"), `{"topic":"user/42"}`, 401},
		{"cookie is not accepted for publishing", s, http.Header{"Cookie": {"crier_token=" + pub}}, `{"topic":"user/42"}`, 401},

		{"wrong static token", s, bearerH("nope"), `{"topic":"user/42"}`, 403},
		{"topic not granted", s, bearerH(pub), `{"topic":"admin"}`, 403},
		{"broadcast with a scoped token", s, bearerH(pub), `{}`, 403},
		{"subscribe grant only", s, bearerH(hs256(t, grants([]string{"*"}, nil, time.Hour))), `{"topic":"user/42"}`, 403},

		// Without -jwt-key, a JWT is just a wrong static token: 403, as the contract says.
		{"no JWT configured", plain, bearerH(pub), `{"topic":"user/42"}`, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tc.srv.URL+"/publish", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.header {
				req.Header[k] = v
			}
			status, body, h := do(t, tc.srv.Client(), req)
			if status != tc.want {
				t.Fatalf("got %d %v, want %d", status, body, tc.want)
			}
			if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", h.Get("WWW-Authenticate"))
			}
			if status == 200 && body["id"] == "" {
				t.Errorf("no id in %v", body)
			}
		})
	}
}

func bearerH(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestPrivateEventsNeverReachUnauthorizedStreams publishes to two users' private topics
// and checks, live and through history replay, that each stream sees only its own.
func TestPrivateEventsNeverReachUnauthorizedStreams(t *testing.T) {
	s := privateServer(t, broker.Options{History: 100, Presence: true}, handlers.Options{}, nil)
	publish := func(topic, data string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"topic": topic, "data": data})
		if topic == "" {
			body, _ = json.Marshal(map[string]any{"data": data})
		}
		status, resp, _ := s.post(t, "application/json", "", string(body), nil)
		if status != 200 {
			t.Fatalf("publish to %q: %d %v", topic, status, resp)
		}
		return resp["id"]
	}
	// until reads events up to the broadcast carrying marker and returns their data.
	until := func(st *stream, marker string) []string {
		t.Helper()
		var seen []string
		for {
			ev, err := st.Next()
			if err != nil {
				t.Fatalf("waiting for %s: %v (saw %q)", marker, err, seen)
			}
			seen = append(seen, ev.Data)
			if ev.Data == `"`+marker+`"` {
				return seen
			}
		}
	}
	noSecret := func(who string, seen []string) {
		t.Helper()
		for _, d := range seen {
			if strings.Contains(d, "secret-42") {
				t.Errorf("%s received user/42's event %s", who, d)
			}
		}
	}

	start := publish("", "start")
	publish("user/42", "secret-42 one")
	publish("user/43", "for 43")
	publish("", "mark-1")

	tok43 := hs256(t, grants([]string{"user/43"}, nil, time.Hour))
	tok42 := hs256(t, grants([]string{"user/42"}, nil, time.Hour))
	// Resuming from before user/42's event: the replay is filtered by the stream's topics.
	resumed := s.open(t, "?topic=user/43&lastEventId="+start, bearerH(tok43))
	replay := until(resumed, "mark-1")
	noSecret("a user/43 stream resuming", replay)
	if !strings.Contains(strings.Join(replay, " "), "for 43") {
		t.Errorf("the user/43 stream did not replay its own event: %q", replay)
	}
	// An id history does not cover replays everything retained, still filtered.
	lost := s.open(t, "?topic=user/43&lastEventId=1", bearerH(tok43))
	noSecret("a user/43 stream resuming from an unknown id", until(lost, "mark-1"))
	public := s.open(t, "?lastEventId="+start, nil)
	noSecret("a public stream resuming", until(public, "mark-1"))
	owner := s.open(t, "?topic=user/42&lastEventId="+start, bearerH(tok42))
	if got := strings.Join(until(owner, "mark-1"), " "); !strings.Contains(got, "secret-42 one") {
		t.Errorf("the user/42 stream did not replay its event: %q", got)
	}

	// There is no way in without the grant, and a literal "user/*" is private too.
	for _, q := range []string{"?topic=user/42", "?topic=user/42&lastEventId=" + start, "?topic=" + url.QueryEscape("user/*")} {
		for _, h := range []http.Header{nil, bearerH(tok43)} {
			if st, resp := s.try(t, q, h); resp.StatusCode == 200 {
				t.Errorf("GET /events%s with %v: 200", q, h)
			} else {
				st.close()
			}
		}
	}

	publish("user/42", "secret-42 two")
	publish("", "mark-2")
	noSecret("a live user/43 stream", until(resumed, "mark-2"))
	noSecret("a live public stream", until(public, "mark-2"))
	if got := strings.Join(until(owner, "mark-2"), " "); !strings.Contains(got, "secret-42 two") {
		t.Errorf("the user/42 stream missed its live event: %q", got)
	}
}

// TestPresenceOfPrivateStreams: a private stream's arrival is announced like any other,
// with a random id and a count: no topic, no token, no subject.
func TestPresenceOfPrivateStreams(t *testing.T) {
	s := privateServer(t, broker.Options{Presence: true}, handlers.Options{}, nil)
	watcher := s.open(t, "", nil)
	watcher.expect(t, "new_user")
	tok := hs256(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
		"crier": map[string]any{"subscribe": []string{"user/alice"}}})
	s.open(t, "?topic=user/alice", bearerH(tok))
	ev := watcher.expect(t, "new_user")
	var fields map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 || fields["message"] != "new user connected" || fields["subscribers"] != 2.0 {
		t.Errorf("new_user for a private stream: %s", ev.Data)
	}
	if strings.Contains(ev.Data, "alice") || strings.Contains(ev.Data, "user/") || strings.Contains(ev.Data, tok) {
		t.Errorf("new_user leaks who subscribed to what: %s", ev.Data)
	}
}

func TestCORSCredentialsForTokenCookies(t *testing.T) {
	v, err := auth.NewVerifier(auth.Keys{Secret: jwtSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ho   handlers.Options
		want string
	}{
		{"no tokens", handlers.Options{CORSOrigins: []string{"https://app.example"}}, ""},
		{"tokens, any origin", handlers.Options{Tokens: v, PrivateTopics: private}, ""},
		{"tokens, listed origin", handlers.Options{Tokens: v, PrivateTopics: private, CORSOrigins: []string{"https://app.example"}}, "true"},
	} {
		s := newServer(t, broker.Options{}, tc.ho)
		st := s.open(t, "", http.Header{"Origin": {"https://app.example"}})
		if got := st.resp.Header.Get("Access-Control-Allow-Credentials"); got != tc.want {
			t.Errorf("%s: Allow-Credentials %q, want %q", tc.name, got, tc.want)
		}
		st.close()
	}
}

// TestTokenExpiryEndsStreamAndResumeLosesNothing runs on a fake clock: a stream ends
// when its token expires, and a client that comes back with a fresh token and its last
// event id receives what was published meanwhile, once. The log never shows the token.
func TestTokenExpiryEndsStreamAndResumeLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Keys{Secret: jwtSecret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var logs testenv.Log
		h, b, _ := setup{}.handler(t, broker.Options{History: 100}, handlers.Options{PrivateTopics: private, Tokens: v,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		publish := func(data string) uint64 {
			r, err := b.Publish(context.Background(), broker.Message{Topic: "user/42", Data: []byte(data)})
			if err != nil {
				t.Fatal(err)
			}
			return r.ID
		}
		// serve runs GET /events in the background; done closes when the handler returns.
		serve := func(tok string, header http.Header) (*lockedRecorder, chan struct{}) {
			rec := &lockedRecorder{ResponseRecorder: httptest.NewRecorder()}
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/events?topic=user/42&access_token="+tok, nil)
			for k, vs := range header {
				req.Header[k] = vs
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(rec, req)
			}()
			synctest.Wait()
			return rec, done
		}

		tok := hs256(t, grants([]string{"user/42"}, nil, time.Minute))
		first, done := serve(tok, nil)
		if first.Code != 200 {
			t.Fatalf("first stream: %d %s", first.Code, first.body())
		}
		last := publish("one")
		time.Sleep(59 * time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the stream ended before its token expired")
		default:
		}
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("the stream is still open after its token expired")
		}
		if !strings.Contains(first.body(), `data: one`) {
			t.Fatalf("first stream: %q", first.body())
		}
		publish("two") // while the client is away
		publish("three")

		if again, _ := serve(tok, http.Header{"Last-Event-Id": {broker.FormatID(last)}}); again.Code != 401 {
			t.Fatalf("the expired token was accepted again: %d", again.Code)
		}
		fresh := hs256(t, grants([]string{"user/42"}, nil, time.Minute))
		second, done := serve(fresh, http.Header{"Last-Event-Id": {broker.FormatID(last)}})
		publish("four")
		synctest.Wait()
		var got []string
		for _, line := range strings.Split(second.body(), "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				got = append(got, d)
			}
		}
		if strings.Join(got, ",") != "two,three,four" {
			t.Errorf("after resuming with a fresh token: %q, want two,three,four", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		<-done

		if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), fresh) {
			t.Errorf("the log shows a token:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "status=401") {
			t.Errorf("the refused request was not logged at debug:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), `reason="token expired"`) {
			t.Errorf("the log does not say the token expired:\n%s", logs.String())
		}
	})
}
