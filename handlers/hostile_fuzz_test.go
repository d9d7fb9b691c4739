package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
	"github.com/crierhq/crier/internal/testenv"
)

// The fuzz tests below drive the real handler in memory with anything a client could
// send. Each checks the answer against a small independent statement of the contract,
// not against the handler's own validation code.

const fuzzMaxBody = 4096

// panicked reports whether the recoverer logged a panic: a 500 is never acceptable,
// and a panic must not hide behind one.
func panicked(logs *testenv.Log) bool { return strings.Contains(logs.String(), "panicked") }

func fuzzHandler(f *testing.F) (http.Handler, *broker.Broker, *testenv.Log) {
	logs := &testenv.Log{} // errors only: a fuzzed request logged at debug could say "panicked"
	h, b, _ := setup{noMetrics: true}.handler(f, broker.Options{History: 50, Presence: true}, handlers.Options{
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})),
		MaxBody: fuzzMaxBody,
	})
	return h, b, logs
}

// Independent statement of the rules a valid publish meets.

func validTopic(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 256 {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validEventName(s string) bool {
	if len(s) < 1 || len(s) > 64 || s == "new_user" || s == "user_left" || s == "missed" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func validKey(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// validPublish reports whether the request parts make a publish the contract accepts.
func validPublish(contentType, query string, body []byte, key string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || len(body) > fuzzMaxBody || !utf8.Valid(body) {
		return false
	}
	if key != "" && !validKey(key) {
		return false
	}
	optional := func(v *string, ok func(string) bool) bool { return v == nil || ok(*v) }
	switch mt {
	case "application/json":
		topic, event, ok := jsonFields(body)
		return ok && optional(topic, validTopic) && optional(event, validEventName)
	case "text/plain":
		q, _ := url.ParseQuery(query)
		if len(q["topic"]) > 1 || len(q["event"]) > 1 {
			return false
		}
		var topic, event *string
		if v, ok := q["topic"]; ok {
			topic = &v[0]
		}
		if v, ok := q["event"]; ok {
			event = &v[0]
		}
		return optional(topic, validTopic) && optional(event, validEventName)
	}
	return false
}

// jsonFields reads the topic and event of a JSON object body the way the contract's
// JSON decoding does (encoding/json: keys match case-insensitively, the last one wins,
// null means absent); ok is false unless body is one object whose topic and event are
// strings or null.
func jsonFields(body []byte) (topic, event *string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, false
		}
		var dst **string
		switch name, _ := tok.(string); {
		case strings.EqualFold(name, "topic"):
			dst = &topic
		case strings.EqualFold(name, "event"):
			dst = &event
		default:
			continue
		}
		if string(raw) == "null" {
			*dst = nil
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, nil, false
		}
		*dst = &s
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, false
	}
	if _, err := dec.Token(); err == nil {
		return nil, nil, false // something after the object
	}
	return topic, event, json.Valid(body)
}

func FuzzPublish(f *testing.F) {
	h, _, logs := fuzzHandler(f)
	seeds := []struct {
		ct, query, body, key string
		auth                 uint8
	}{
		{"application/json", "", `{"topic":"orders","event":"shipped","data":{"n":1}}`, "", 0},
		{"application/json", "", `{"data":[1,2,3]}`, "k-1", 0},
		{"application/json; charset=utf-8", "", `{"topic":"","data":1}`, "", 0},
		{"application/json", "", `{"event":"new_user"}`, "", 0},
		{"application/json", "", `null`, "", 0},
		{"application/json", "", `{"topic":"a"} {}`, "", 0},
		{"application/json", "", "{\"topic\":\"\xff\"}", "", 0},
		{"application/json", "", `{"topic":"\u0000"}`, "", 0},
		{"application/json", "", `{"topic":1}`, "", 0},
		{"text/plain", "topic=a&event=b", "line1\nline2\r\nline3\rdata: forged", "", 0},
		{"text/plain", "topic=a&topic=b", "x", "", 0},
		{"text/plain", "topic=%ff", "x", "", 0},
		{"text/plain", "event=x%0Aid:1", "x", "", 0},
		{"text/plain", "", "\xc3\x28", "", 0},
		{"text/html", "", "<b>", "", 0},
		{"", "", "", "", 0},
		{"application/json", "", `{}`, "", 1},
		{"application/json", "", `{}`, "", 2},
		{"text/plain", "", "x", "\x7f", 0},
		{"text/plain", "", strings.Repeat("x", fuzzMaxBody+1), "", 0},
	}
	for _, s := range seeds {
		f.Add(s.ct, s.query, []byte(s.body), s.key, s.auth)
	}
	f.Fuzz(func(t *testing.T, contentType, query string, body []byte, key string, auth uint8) {
		req := httptest.NewRequest(http.MethodPost, "/publish", bytes.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		switch auth % 3 {
		case 0:
			req.Header.Set("Authorization", "Bearer "+token)
		case 1:
			req.Header.Set("Authorization", "Bearer wrong")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 || panicked(logs) {
			t.Fatalf("publish %q ?%s %q key %q: %d %s", contentType, query, body, key, rec.Code, rec.Body)
		}
		var answer map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("publish answered %d with non-JSON %q", rec.Code, rec.Body)
		}
		valid := auth%3 == 0 && validPublish(contentType, query, body, key)
		// The handler lives across inputs: a key an earlier input used for another event
		// is a conflict (422), as the contract says, however valid the input on its own.
		reused := rec.Code == http.StatusUnprocessableEntity && key != "" && strings.Contains(answer["error"], "Idempotency-Key")
		switch {
		case rec.Code == http.StatusOK && !valid:
			t.Fatalf("publish %q ?%s %q key %q: 200 for invalid input", contentType, query, body, key)
		case rec.Code != http.StatusOK && valid && !reused:
			t.Fatalf("publish %q ?%s %q key %q: %d %s for valid input", contentType, query, body, key, rec.Code, answer["error"])
		case rec.Code == http.StatusOK && answer["id"] == "":
			t.Fatalf("publish: 200 without an id: %s", rec.Body)
		case rec.Code != http.StatusOK && answer["error"] == "":
			t.Fatalf("publish: %d without an error message: %s", rec.Code, rec.Body)
		}
	})
}

// openOnce runs GET /events with a context that is already cancelled: the handler
// answers, writes what it has at once, and returns.
func openOnce(h http.Handler, target string, header http.Header) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "/events", nil).WithContext(ctx)
	req.URL.RawQuery = target
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func FuzzLastEventID(f *testing.F) {
	h, b, logs := fuzzHandler(f)
	var ids []string
	for i := range 60 { // more than history holds: old ids are evicted
		r, err := b.Publish(context.Background(), broker.Message{Topic: "t", Data: []byte{byte('a' + i%26)}})
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, broker.FormatID(r.ID))
	}
	for _, s := range []string{ids[0], ids[30], ids[59], "0", "-1", "", " ", "18446744073709551615",
		"18446744073709551616", "99999999999999999999999", "1e6", "0x10", "abc", "\xff\xfe", "1\x002",
		strings.Repeat("9", 1000), ids[30] + " ", "+" + ids[30]} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, id string, query bool) {
		header := http.Header{}
		target := "topic=t"
		if query {
			target += "&lastEventId=" + url.QueryEscape(id)
		} else {
			header.Set("Last-Event-ID", id)
		}
		rec := openOnce(h, target, header)
		if panicked(logs) {
			t.Fatalf("Last-Event-ID %q: panic", id)
		}
		switch {
		case rec.Code == http.StatusOK:
			if !strings.HasPrefix(rec.Body.String(), "retry: ") {
				t.Fatalf("Last-Event-ID %q: stream starts %q", id, rec.Body.String())
			}
		case rec.Code >= 400 && rec.Code < 500:
			if !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("Last-Event-ID %q: %d without a JSON error", id, rec.Code)
			}
		default:
			t.Fatalf("Last-Event-ID %q: %d, want a stream or a 4xx", id, rec.Code)
		}
	})
}

func FuzzStreamTopics(f *testing.F) {
	h, _, logs := fuzzHandler(f)
	many := make([]string, 70)
	for i := range many {
		many[i] = "topic=t" + string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	for _, s := range []string{"", "topic=a", "topic=a&topic=a", "topic=", "topic=%ff", "topic=%00",
		"topic=%7f", "topic=%c2%85", "topic=" + strings.Repeat("é", 256), "topic=" + strings.Repeat("é", 257),
		"topic=a;b", "topic=%zz&topic=b", strings.Join(many[:64], "&"), strings.Join(many[:65], "&"),
		strings.Join(append(many[:64:64], many[0]), "&"), "topic=orders/eu/*", "topic=a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		rec := openOnce(h, rawQuery, nil)
		if panicked(logs) {
			t.Fatalf("?%s: panic", rawQuery)
		}
		q, _ := url.ParseQuery(rawQuery)
		want := http.StatusOK
		distinct := map[string]bool{}
		for _, topic := range q["topic"] {
			if !validTopic(topic) {
				want = http.StatusBadRequest
			}
			distinct[topic] = true
		}
		if len(distinct) > 64 {
			want = http.StatusBadRequest
		}
		if rec.Code != want {
			t.Fatalf("?%s: %d, want %d (%s)", rawQuery, rec.Code, want, rec.Body)
		}
	})
}
