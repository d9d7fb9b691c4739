package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
	"github.com/crierhq/crier/handlers"
)

// roomData is the payload of join and leave.
type roomData struct {
	Topic       string `json:"topic"`
	User        string `json:"user"`
	Members     int    `json:"members"`
	Connections int    `json:"connections"`
	Time        string `json:"time"`
}

// expectRoom reads st's next event and checks that it is typ about user, with the counts.
func (st *stream) expectRoom(t *testing.T, typ, topic, user string, members, conns int) {
	t.Helper()
	ev := st.expect(t, typ)
	var got roomData
	if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
		t.Fatalf("%s %q: %v", typ, ev.Data, err)
	}
	if _, err := time.Parse(time.RFC3339, got.Time); err != nil || ev.ID == "" {
		t.Fatalf("%s %q (id %q): want an id and an RFC 3339 time", typ, ev.Data, ev.ID)
	}
	want := roomData{Topic: topic, User: user, Members: members, Connections: conns, Time: got.Time}
	if got != want {
		t.Fatalf("%s: got %s, want %+v", typ, ev.Data, want)
	}
}

// presenceAnswer is GET /presence's answer.
type presenceAnswer struct {
	Topic   string
	Members int
	Users   []struct {
		User        string
		Connections int
	}
	Truncated bool
	Error     string
}

func (s *server) presence(t *testing.T, query string, header http.Header) (int, presenceAnswer, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/presence"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /presence%s: %v", query, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a presenceAnswer
	if err := json.Unmarshal(raw, &a); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /presence%s answered %d with non-JSON %q", query, resp.StatusCode, raw)
	}
	return resp.StatusCode, a, string(raw)
}

func userToken(t *testing.T, sub string, subscribe ...string) http.Header {
	return bearerH(hs256(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
		"crier": map[string]any{"subscribe": subscribe}}))
}

// roomServer runs crier with rooms room/* and user/* (user/* private, as in privateServer).
func roomServer(t *testing.T, presence bool) *server {
	rooms := auth.Patterns{"room/*", "user/*"}
	return privateServer(t, broker.Options{Presence: presence, Rooms: rooms.Match}, handlers.Options{}, nil)
}

// TestRoomsOverHTTP: anonymous users and JWT users in a public room; three streams of one
// user are one member, joined once and left once; /presence lists them.
func TestRoomsOverHTTP(t *testing.T) {
	s := roomServer(t, true)
	anon := s.open(t, "?topic=room/1", nil)
	anonID := decode(t, anon.expect(t, "new_user")).Subscriber
	anon.expectRoom(t, "join", "room/1", anonID, 1, 1)

	// alice's token is given on a public room: it names her there.
	alice := userToken(t, "alice")
	var tabs []*stream
	for i := range 3 {
		tab := s.open(t, "?topic=room/1&topic=news", alice)
		tab.expect(t, "new_user")
		if i == 0 {
			tab.expectRoom(t, "join", "room/1", "alice", 2, 1)
			anon.expect(t, "new_user")
			anon.expectRoom(t, "join", "room/1", "alice", 2, 1)
		}
		tabs = append(tabs, tab)
	}
	// The next thing anon hears after alice's first tab: the other tabs' new_user, no join.
	for range 2 {
		anon.expect(t, "new_user")
	}
	code, got, raw := s.presence(t, "?topic=room/1", nil)
	want := fmt.Sprintf(`{"topic":"room/1","members":2,"users":[{"user":%q,"connections":1},{"user":"alice","connections":3}],"truncated":false}`, anonID)
	if anonID > "alice" {
		want = fmt.Sprintf(`{"topic":"room/1","members":2,"users":[{"user":"alice","connections":3},{"user":%q,"connections":1}],"truncated":false}`, anonID)
	}
	if code != 200 || strings.TrimSpace(raw) != want {
		t.Fatalf("GET /presence: %d %s, want %s", code, raw, want)
	}
	if code, got, _ = s.presence(t, "?topic=room/1&limit=1", nil); code != 200 || got.Members != 2 || len(got.Users) != 1 || !got.Truncated {
		t.Errorf("limit=1: %d %+v, want 2 members, 1 user listed, truncated", code, got)
	}

	tabs[0].close()
	tabs[1].close()
	for range 2 {
		anon.expect(t, "user_left")
	}
	tabs[2].close()
	anon.expectRoom(t, "leave", "room/1", "alice", 1, 0)
	anon.expect(t, "user_left")
	if code, got, _ := s.presence(t, "?topic=room/1", nil); code != 200 || got.Members != 1 || len(got.Users) != 1 || got.Users[0].User != anonID {
		t.Errorf("after alice left: %d %+v", code, got)
	}
	if code, got, raw := s.presence(t, "?topic=room/empty", nil); code != 200 || got.Members != 0 || got.Users == nil || got.Topic != "room/empty" {
		t.Errorf("an empty room: %d %s, want 200 with 0 members and []", code, raw)
	}
}

// TestPrivateRoomNotGranted: a private room's members reach neither a stream nor a
// /presence reader without a grant, and room events never cross rooms.
func TestPrivateRoomNotGranted(t *testing.T) {
	s := roomServer(t, false)
	watcher := s.open(t, "?topic=room/lobby", userToken(t, "watcher"))
	watcher.expectRoom(t, "join", "room/lobby", "watcher", 1, 1)

	owner := s.open(t, "?topic=user/42", userToken(t, "u42", "user/42"))
	owner.expectRoom(t, "join", "user/42", "u42", 1, 1)
	// Another user's token does not open the room; nothing reaches the lobby either.
	if st, resp := s.try(t, "?topic=user/42", userToken(t, "u43", "user/43")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a stream of user/42 with a token for user/43: %d, want 403", resp.StatusCode)
	} else {
		st.close()
	}
	s.open(t, "?topic=room/lobby", nil)
	ev := watcher.expect(t, "join")
	if strings.Contains(ev.Data, "user/42") || strings.Contains(ev.Data, "u42") {
		t.Errorf("the lobby heard of the private room: %s", ev.Data)
	}

	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"no token", "?topic=user/42", nil, 401},
		{"garbage token", "?topic=user/42", bearerH("garbage"), 401},
		{"token for another room", "?topic=user/42", userToken(t, "u43", "user/43"), 403},
		{"token granting it", "?topic=user/42", userToken(t, "u42", "user/42"), 200},
		{"token in the query", "?topic=user/42&access_token=" + hs256(t, grants([]string{"user/*"}, nil, time.Hour)), nil, 200},
		{"publish token", "?topic=user/42", bearerH(token), 200},
		{"public room, no token", "?topic=room/lobby", nil, 200},
		{"not a room", "?topic=news", nil, 404},
		{"private, not a room", "?topic=admin", bearerH(token), 404},
		{"no topic", "", nil, 400},
		{"bad topic", "?topic=a%0Ab", nil, 400},
		{"bad limit", "?topic=room/lobby&limit=0", nil, 400},
		{"limit not a number", "?topic=room/lobby&limit=many", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got, raw := s.presence(t, tc.query, tc.header)
			if code != tc.want {
				t.Fatalf("GET /presence%s: %d %s, want %d", tc.query, code, raw, tc.want)
			}
			if code != 200 && got.Error == "" {
				t.Errorf("%d without an error message: %s", code, raw)
			}
			if code != 200 && strings.Contains(raw, "u42") {
				t.Errorf("a refusal names a member: %s", raw)
			}
			if code == 200 && strings.Contains(tc.query, "user/42") && (got.Members != 1 || got.Users[0].User != "u42") {
				t.Errorf("the owner's view: %s", raw)
			}
		})
	}
}

// TestJoinAndLeaveAreReserved: publishers cannot forge room events.
func TestJoinAndLeaveAreReserved(t *testing.T) {
	s := roomServer(t, false)
	for _, name := range []string{"join", "leave"} {
		if code, body, _ := s.post(t, "text/plain", "?topic=room/1&event="+name, "x", nil); code != 400 || body["error"] == "" {
			t.Errorf("publish event %s: %d %v, want 400", name, code, body)
		}
	}
}
