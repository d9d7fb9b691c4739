package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

func TestPublishErrors(t *testing.T) {
	s := newServer(t, broker.Options{History: 10}, handlers.Options{MaxBody: 64})
	long := strings.Repeat("a", 65)
	for _, tc := range []struct {
		name        string
		auth        string // "" sends none; "-" sends the right token
		contentType string
		query, body string
		header      http.Header
		want        int
	}{
		{"no token", "", "application/json", "", `{}`, nil, 401},
		{"not bearer", "Basic dXNlcjpwYXNz", "application/json", "", `{}`, nil, 401},
		{"empty bearer", "Bearer ", "application/json", "", `{}`, nil, 401},
		{"wrong token", "Bearer nope", "application/json", "", `{}`, nil, 403},
		{"wrong token, bad body too", "Bearer nope", "application/xml", "", `<x/>`, nil, 403},
		{"no content type", "-", "", "", `{}`, nil, 415},
		{"xml", "-", "application/xml", "", `<x/>`, nil, 415},
		{"form", "-", "application/x-www-form-urlencoded", "", `a=b`, nil, 415},
		{"too large json", "-", "application/json", "", `{"data":"` + long + `"}`, nil, 413},
		{"too large text", "-", "text/plain", "", long, nil, 413},
		{"malformed json", "-", "application/json", "", `{"data":`, nil, 400},
		{"empty json body", "-", "application/json", "", ``, nil, 400},
		{"array body", "-", "application/json", "", `[1,2]`, nil, 400},
		{"null body", "-", "application/json", "", `null`, nil, 400},
		{"string body", "-", "application/json", "", `"hi"`, nil, 400},
		{"trailing garbage", "-", "application/json", "", `{"data":1} x`, nil, 400},
		{"two objects", "-", "application/json", "", `{}{}`, nil, 400},
		{"topic not a string", "-", "application/json", "", `{"topic":5}`, nil, 400},
		{"event not a string", "-", "application/json", "", `{"event":["a"]}`, nil, 400},
		{"empty topic", "-", "application/json", "", `{"topic":""}`, nil, 400},
		{"topic with a control char", "-", "application/json", "", `{"topic":"a\u0007"}`, nil, 400},
		{"empty event", "-", "application/json", "", `{"event":""}`, nil, 400},
		{"event with a space", "-", "application/json", "", `{"event":"a b"}`, nil, 400},
		{"event with a newline", "-", "application/json", "", `{"event":"a\nb"}`, nil, 400},
		{"event too long", "-", "text/plain", "?event=" + long, "x", nil, 400},
		{"reserved new_user", "-", "application/json", "", `{"event":"new_user"}`, nil, 400},
		{"reserved user_left", "-", "text/plain", "?event=user_left", "x", nil, 400},
		{"reserved missed", "-", "text/plain", "?event=missed", "x", nil, 400},
		{"text, two topics", "-", "text/plain", "?topic=a&topic=b", "x", nil, 400},
		{"text, invalid UTF-8", "-", "text/plain", "", "\xff\xfe", nil, 400},
		{"json, invalid UTF-8", "-", "application/json", "", "{\"data\":\"\xff\"}", nil, 400},
		{"empty idempotency key", "-", "text/plain", "", "x", http.Header{"Idempotency-Key": {""}}, 400},
		{"idempotency key too long", "-", "text/plain", "", "x", http.Header{"Idempotency-Key": {strings.Repeat("k", 129)}}, 400},
		{"idempotency key with a tab", "-", "text/plain", "", "x", http.Header{"Idempotency-Key": {"a\tb"}}, 400},
		{"json", "-", "application/json", "", `{"topic":"orders","event":"order.shipped:v1-x_y","data":[1]}`, nil, 200},
		{"json with charset", "-", "application/json; charset=utf-8", "", `{"data":"x"}`, nil, 200},
		{"json without data", "-", "application/json", "", `{}`, nil, 200},
		{"text", "-", "text/plain", "?topic=orders&event=note", "hello", nil, 200},
		{"text, empty body", "-", "text/plain", "", "", nil, 200},
		{"64-character event", "-", "text/plain", "?event=" + long[:64], "x", nil, 200},
		{"128-character key", "-", "text/plain", "", "x", http.Header{"Idempotency-Key": {strings.Repeat("k", 128)}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/publish"+tc.query, strings.NewReader(tc.body))
			switch tc.auth {
			case "":
			case "-":
				req.Header.Set("Authorization", "Bearer "+token)
			default:
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			status, body, header := do(t, s.Client(), req)
			if status != tc.want {
				t.Fatalf("status %d %v, want %d", status, body, tc.want)
			}
			if status == http.StatusOK && body["id"] == "" {
				t.Errorf("200 without an id: %v", body)
			}
			if status != http.StatusOK && body["error"] == "" {
				t.Errorf("%d without an error message: %v", status, body)
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
}

func TestPublishedDataOnTheWire(t *testing.T) {
	s := newServer(t, broker.Options{}, handlers.Options{})
	st := s.open(t, "?topic=t", nil)
	for _, tc := range []struct {
		name, contentType, query, body string
		wantType, wantData             string
	}{
		{"json data is compacted", "application/json", "", "{\"data\": {\"a\" : [1, 2,\n 3]}}", "message", `{"a":[1,2,3]}`},
		{"json string data", "application/json", "", `{"event":"e","data":"line1\nline2"}`, "e", `"line1\nline2"`},
		{"json without data is null", "application/json", "", `{"topic":"t"}`, "message", `null`},
		{"text is verbatim across lines", "text/plain", "?event=note", "a\r\nb\rc\nd", "note", "a\nb\nc\nd"},
		{"text cannot forge fields", "text/plain", "", "x\n\nevent: evil\nid: 1\ndata: y", "message", "x\n\nevent: evil\nid: 1\ndata: y"},
		{"text, empty", "text/plain", "?topic=t", "", "message", ""},
	} {
		status, body, _ := s.post(t, tc.contentType, tc.query, tc.body, nil)
		if status != http.StatusOK {
			t.Fatalf("%s: publish %d %v", tc.name, status, body)
		}
		ev := st.expect(t, tc.wantType)
		if ev.Data != tc.wantData || ev.ID != body["id"] {
			t.Errorf("%s: got id %s data %q, want id %s data %q", tc.name, ev.ID, ev.Data, body["id"], tc.wantData)
		}
	}
}

func TestIdempotentRetry(t *testing.T) {
	s := newServer(t, broker.Options{History: 10}, handlers.Options{})
	st := s.open(t, "", nil)
	key := http.Header{"Idempotency-Key": {"order-42-shipped"}}
	_, first, _ := s.post(t, "text/plain", "", "once", key)
	status, retry, _ := s.post(t, "text/plain", "", "once", key)
	if status != http.StatusOK || retry["id"] != first["id"] {
		t.Fatalf("retry: %d %v, want 200 with id %s", status, retry, first["id"])
	}
	_, other, _ := s.post(t, "text/plain", "", "marker", nil)
	if ev := st.expect(t, "message"); ev.Data != "once" {
		t.Fatalf("first event %q", ev.Data)
	}
	if ev := st.expect(t, "message"); ev.ID != other["id"] {
		t.Errorf("after the retry came %q (%s): delivered twice", ev.Data, ev.ID)
	}
}
