package redisbus

import (
	"context"
	"fmt"
	"testing"

	"github.com/crierhq/crier/internal/testenv"
)

// BenchmarkRoomScript is Redis' side of a join and a leave in a room of members users:
// one op is a newcomer's count sent as 1 (a join appended to the log) and then as 0 (a
// leave), each one call of the script that carries a node's presence, with its mark.
// "tab": the counts (2, then 1) are of a user already in the room, so the log carries
// only the marks, in entries of their own. Its cost must not grow with the room.
func BenchmarkRoomScript(b *testing.B) {
	r := testenv.StartRedis(b)
	ops := map[string]struct {
		user   string
		counts []int
	}{"user": {"newcomer", []int{1, 0}}, "tab": {"user0", []int{2, 1}}}
	for _, members := range []int{100, 10000, 100000} {
		for _, who := range []string{"user", "tab"} {
			b.Run(fmt.Sprintf("members=%d/%s", members, who), func(b *testing.B) {
				benchRoomScript(b, r.URL, fmt.Sprintf("bench%d%s:", members, who), members, ops[who].user, ops[who].counts)
			})
		}
	}
}

func benchRoomScript(b *testing.B, url, prefix string, members int, user string, counts []int) {
	ctx := context.Background()
	bus, err := New(Options{URL: url, Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.tail.Close()
	defer bus.rdb.Close()
	// Other nodes' users, as the room's hash holds them.
	for i := 0; i < members; i += 10000 {
		var fields []any
		for j := i; j < min(i+10000, members); j++ {
			fields = append(fields, fmt.Sprint("user", j), 1)
		}
		if err := bus.rdb.HSet(ctx, bus.opts.Prefix+"room:room/1", fields...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	ttl := bus.opts.NodeTTL.Microseconds()
	var mark uint64
	for b.Loop() {
		for _, n := range counts {
			mark++
			err := announceScript.Run(ctx, bus.rdb, nil, bus.opts.Prefix, bus.opts.Slack, bus.node, ttl, "0",
				"r", user, "room/1", n, mark).Err()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := bus.rdb.HLen(ctx, bus.opts.Prefix+"room:room/1").Val(); got != int64(members) {
		b.Fatalf("the room has %d members, want %d", got, members)
	}
}
