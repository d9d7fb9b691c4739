package browser_test

import (
	"strconv"
	"testing"

	"github.com/crierhq/crier/internal/testenv"
)

// members is a condition: the page lists room's members, n of them, by the count and by
// the list.
func members(room string, n int) string {
	return `(() => {
		const box = [...document.querySelectorAll("#room-list .room")].find((b) => b.dataset.topic === ` + js(room) + `);
		const want = ` + strconv.Itoa(n) + `;
		return !$("rooms").hidden && !!box && box.querySelectorAll(".user").length === want &&
			box.querySelector(".members").textContent === want + "\u00a0member" + (want === 1 ? "" : "s");
	})()`
}

// TestRoomMembers follows a room from two browsers and from a second tab of the first: the
// page lists the room's members from GET /presence and keeps the list current with join
// and leave, also in the tab that joined a stream that was already in the room.
func TestRoomMembers(t *testing.T) {
	t.Parallel()
	srv := testenv.Start(t, append(crierArgs(), "-presence-topics", "room/*"))
	browser := newBrowser(t)
	a := openTab(t, browser, "first browser", srv.URL+"/?topic=room/1&topic=news")
	a.waitFor(t, "its own membership", members("room/1", 1))

	b := openTab(t, otherBrowser(t, browser), "second browser", srv.URL+"/?topic=room/1")
	for _, tb := range []*tab{a, b} {
		tb.waitFor(t, "two members", members("room/1", 2))
	}
	a.waitFor(t, "the join in the feed", `has("join", "joined room/1")`)

	// A second tab of the first browser shares its stream: no join comes, yet it lists
	// the members too.
	a2 := openTab(t, browser, "first browser, second tab", srv.URL+"/?topic=room/1")
	a2.waitFor(t, "the members of a room its stream was already in", members("room/1", 2))
	if eval[bool](t, a, `document.querySelector("#room-list .room[data-topic='news']") !== null`) {
		t.Errorf("news, not a room, is listed as one")
	}

	b.close(t)
	for _, tb := range []*tab{a, a2} {
		tb.waitFor(t, "one member after the second browser left", members("room/1", 1))
	}
	a.waitFor(t, "the leave in the feed", `has("leave", "left room/1")`)
	for _, tb := range []*tab{a, a2} {
		tb.assertClean(t)
	}
}
