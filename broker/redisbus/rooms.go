package redisbus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crierhq/crier/broker"
)

// Rooms live in these keys, each under Options.Prefix:
//
//	room:TOPIC    user -> the user's streams in the room across the cluster (hash): the
//	              room's member count is its length, whatever the size of the room
//	rooms:NODE    TOPIC "\n" USER -> that user's streams in that room on NODE (hash), so
//	              that a dead node's share can be taken back (topics hold no control
//	              characters, so the first newline ends the topic)
//
// A node sends, per user and room, how many streams it holds, not +1 or -1: the count
// that crosses zero announces join or leave (stream entries k J and L, with t u m c:
// topic, user, members, connections), and a count sent twice changes nothing.
//
// Each count a node sends has the mark Occupy returned for it. The join or leave it
// makes carries the mark (fields n q: node, mark), and a call whose last counts made no
// entry ends with an entry of its own (k g, n q), so that the node's reader finds every
// mark at the point in the log where that count took effect (see broker.RoomBus). Other
// nodes ignore them.
const roomsLua = `
local MARKED = nil -- the newest mark an entry of this call carried
local function room_entry(node, mark, f)
  if mark then
    f[#f + 1] = 'n'; f[#f + 1] = node; f[#f + 1] = 'q'; f[#f + 1] = mark
    MARKED = mark
  end
  append(f)
end
local function room_set(node, topic, user, n, quiet, mark)
  local field = topic .. '\n' .. user
  local mine = P .. 'rooms:' .. node
  local old = tonumber(redis.call('HGET', mine, field) or '0')
  if n == old then return end
  if n > 0 then redis.call('HSET', mine, field, n) else redis.call('HDEL', mine, field) end
  local room = P .. 'room:' .. topic
  local total = redis.call('HINCRBY', room, user, n - old)
  local before = total - (n - old)
  if total <= 0 then
    redis.call('HDEL', room, user)
    if before > 0 and not quiet then
      room_entry(node, mark, {'k', 'L', 't', topic, 'u', user, 'm', redis.call('HLEN', room), 'c', 0})
    end
  elseif before <= 0 and not quiet then
    room_entry(node, mark, {'k', 'J', 't', topic, 'u', user, 'm', redis.call('HLEN', room), 'c', total})
  end
end
local function room_field(field)
  local i = string.find(field, '\n', 1, true)
  return string.sub(field, 1, i - 1), string.sub(field, i + 1)
end
-- reap_rooms takes a node's streams out of every room, announcing who left.
local function reap_rooms(node)
  local mine = P .. 'rooms:' .. node
  for _, field in ipairs(redis.call('HKEYS', mine)) do
    local topic, user = room_field(field)
    room_set(node, topic, user, 0, false)
  end
  redis.call('DEL', mine)
end
`

// roomResyncScript replaces a node's share of the rooms with what it really holds,
// silently, like resyncScript. ARGV: prefix, slack, node, then topic, user, count
// triples; a count of -1 leaves that user's count in that room as it is.
var roomResyncScript = redis.NewScript(prelude + `
local node = ARGV[3]
local want = {}
for i = 4, #ARGV - 2, 3 do want[ARGV[i] .. '\n' .. ARGV[i + 1]] = true end
for _, field in ipairs(redis.call('HKEYS', P .. 'rooms:' .. node)) do
  if not want[field] then
    local topic, user = room_field(field)
    room_set(node, topic, user, 0, true)
  end
end
for i = 4, #ARGV - 2, 3 do
  local n = tonumber(ARGV[i + 2])
  if n >= 0 then room_set(node, ARGV[i], ARGV[i + 1], n, true) end
end
return 0
`)

// roomScript reads a room: its member count and at most limit users with their
// connections. ARGV: prefix, slack, topic, limit. Returns {members, {user, n, ...}}.
var roomScript = redis.NewScript(prelude + `
local room = P .. 'room:' .. ARGV[3]
local limit = tonumber(ARGV[4])
local n = redis.call('HLEN', room)
if n <= limit then return {n, redis.call('HGETALL', room)} end
local out, seen, cursor = {}, {}, '0'
repeat
  local r = redis.call('HSCAN', room, cursor, 'COUNT', 1000)
  cursor = r[1]
  for i = 1, #r[2] - 1, 2 do
    local user = r[2][i]
    if #out < 2 * limit and not seen[user] then
      seen[user] = true
      out[#out + 1] = user
      out[#out + 1] = r[2][i + 1]
    end
  end
until cursor == '0' or #out >= 2 * limit
return {n, out}
`)

// Occupy queues the count of user's streams in the room topic on this node and returns
// its mark; it never blocks.
func (bus *Bus) Occupy(topic, user string, n int) uint64 {
	return bus.queue(presenceOp{kind: 'r', id: user, topic: topic, n: n})
}

// Room reads who is in the room topic across the cluster; see broker.RoomBus.
func (bus *Bus) Room(ctx context.Context, topic string, limit int) (broker.Room, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := roomScript.Run(ctx, bus.rdb, nil, bus.opts.Prefix, bus.opts.Slack, topic, max(limit, 0)).Slice()
	if err != nil {
		return broker.Room{}, fmt.Errorf("redisbus: room: %w", err)
	}
	if len(res) != 2 {
		return broker.Room{}, fmt.Errorf("redisbus: room: unexpected reply %v", res)
	}
	members, _ := res[0].(int64)
	flat, _ := res[1].([]any)
	r := broker.Room{Topic: topic, Members: int(members), Users: make([]broker.RoomUser, 0, len(flat)/2)}
	for i := 0; i+1 < len(flat); i += 2 {
		user, _ := flat[i].(string)
		n, _ := strconv.Atoi(fmt.Sprint(flat[i+1]))
		r.Users = append(r.Users, broker.RoomUser{User: user, Connections: n})
	}
	broker.SortRoomUsers(r.Users)
	return r, nil
}

// resyncRooms tells Redis this node's share of the rooms again, silently, and returns
// ops followed by every op queued until then. The rooms that those ops are about are
// left for the ops, so that they announce what they change: a silent resync must not
// swallow a join that is merely waiting to be sent.
func (bus *Bus) resyncRooms(ctx context.Context, b Feed, ops []presenceOp) ([]presenceOp, error) {
	occ := b.Occupants(func() {
		// With the broker's lock held: nothing is queued between the snapshot and this.
		bus.mu.Lock()
		ops = append(ops, bus.ops...)
		bus.ops = nil
		bus.mu.Unlock()
	})
	pending := make(map[[2]string]bool)
	for _, op := range ops {
		if op.kind == 'r' {
			pending[[2]string{op.topic, op.id}] = true
		}
	}
	args := []any{bus.opts.Prefix, bus.opts.Slack, bus.node}
	for _, o := range occ {
		n := o.Connections
		if pending[[2]string{o.Topic, o.User}] {
			n = -1
		}
		args = append(args, o.Topic, o.User, n)
	}
	for k := range pending {
		args = append(args, k[0], k[1], -1)
	}
	return ops, roomResyncScript.Run(ctx, bus.rdb, nil, args...).Err()
}

// markOf reads the mark an entry carries when it is node's.
func markOf(str func(string) string, node string) (uint64, bool) {
	if str("n") != node {
		return 0, false
	}
	return broker.ParseID(str("q"))
}

// roomEvent turns a J or L entry into the join or leave it carries.
func roomEvent(id uint64, t time.Time, kind string, str func(string) string) *broker.Event {
	name := broker.NameJoin
	if kind == "L" {
		name = broker.NameLeave
	}
	members, _ := strconv.Atoi(str("m"))
	conns, _ := strconv.Atoi(str("c"))
	return broker.RoomEvent(id, t, name, str("t"), str("u"), members, conns)
}
