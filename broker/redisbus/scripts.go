package redisbus

import "github.com/redis/go-redis/v9"

// The log lives in these keys, each under Options.Prefix:
//
//	stream        the log: every event, published and presence, in id order. Entry id
//	              "<event id>-0"; fields b (the id of the entry before it, so that a
//	              reader can tell a gap), k (p publish, j new_user, l user_left), then
//	              t e d i (topic, event, data, idempotency key) or s c (subscriber,
//	              cluster count).
//	last          the newest event id handed out, the id of the newest entry
//	floor         the newest published id no longer retained (resume below it: missed)
//	ids           the ids of the retained published events, oldest first (-history)
//	keys          idempotency key -> id of its event (sorted set, pruned with ids)
//	nodes         node -> when it counts as dead, in microseconds (sorted set)
//	members:NODE  the subscribers open on NODE
//	room:TOPIC, rooms:NODE  who is in which room (rooms.go)
//
// Every script starts with ARGV[1] = prefix and ARGV[2] = the stream's length cap. The
// scripts name their keys from the prefix, so they suit one Redis (or a primary with
// replicas), not Redis Cluster.
const prelude = `
local P = ARGV[1]
local MAXLEN = ARGV[2]
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Ids are microseconds of Redis' clock, bumped past the newest one: ordered across the
-- cluster, and increasing across restarts of Redis even when the keys are lost.
-- append adds an entry to the log and returns its id.
local function append(fields)
  local id = now_us()
  local before = redis.call('GET', P .. 'last') or '0'
  if id <= tonumber(before) then id = tonumber(before) + 1 end
  local sid = fmt(id)
  redis.call('SET', P .. 'last', sid)
  -- A fresh log vouches for nothing before its first event.
  redis.call('SETNX', P .. 'floor', fmt(id - 1))
  redis.call('XADD', P .. 'stream', 'MAXLEN', '~', MAXLEN, sid .. '-0', 'b', before, unpack(fields))
  return sid
end
local function count()
  local n = 0
  for _, node in ipairs(redis.call('ZRANGE', P .. 'nodes', 0, -1)) do
    n = n + redis.call('SCARD', P .. 'members:' .. node)
  end
  return n
end
` + roomsLua + `
-- reap forgets a node and tells everyone that its subscribers left.
local function reap(node)
  reap_rooms(node)
  local key = P .. 'members:' .. node
  local members = redis.call('SMEMBERS', key)
  redis.call('DEL', key)
  redis.call('ZREM', P .. 'nodes', node)
  local n = count() + #members
  for _, m in ipairs(members) do
    n = n - 1
    append({'k', 'l', 's', m, 'c', n})
  end
  return #members
end
local function reap_dead(now)
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', '(' .. fmt(now))) do
    reap(node)
  end
end
`

// publishScript appends a published event unless its idempotency key is retained.
// ARGV: prefix, maxlen, history, topic, event, data, key (scoped to its publisher), text
// ("1" or empty). Returns {id, 0} for a new event, {id, 1} for a retry of a retained one,
// {id, 2} when the key's retained event differs.
var publishScript = redis.NewScript(prelude + `
local history = tonumber(ARGV[3])
local key = ARGV[7]
if key ~= '' and history > 0 then
  local s = redis.call('ZSCORE', P .. 'keys', key)
  if s and tonumber(s) > tonumber(redis.call('GET', P .. 'floor') or '0') then
    local sid = fmt(tonumber(s))
    local e = redis.call('XRANGE', P .. 'stream', sid .. '-0', sid .. '-0')
    if #e == 1 then
      local f = {}
      for i = 1, #e[1][2] - 1, 2 do f[e[1][2][i]] = e[1][2][i + 1] end
      if f.t ~= ARGV[4] or f.e ~= ARGV[5] or f.d ~= ARGV[6] or (f.x or '') ~= ARGV[8] then
        return {sid, 2}
      end
    end
    return {sid, 1}
  end
end
local sid = append({'k', 'p', 't', ARGV[4], 'e', ARGV[5], 'd', ARGV[6], 'i', key, 'x', ARGV[8]})
if history > 0 then
  redis.call('RPUSH', P .. 'ids', sid)
  if key ~= '' then redis.call('ZADD', P .. 'keys', sid, key) end
  while redis.call('LLEN', P .. 'ids') > history do
    local old = redis.call('LPOP', P .. 'ids')
    redis.call('SET', P .. 'floor', old)
    redis.call('ZREMRANGEBYSCORE', P .. 'keys', '-inf', old)
  end
else
  redis.call('SET', P .. 'floor', sid)
end
return {sid, 0}
`)

// announceScript keeps a node alive, reaps dead nodes when asked, and appends a
// presence event for each join (j) or leave (l), and for each room count (r) that calls
// for one. ARGV: prefix, maxlen, node, ttl in microseconds, reap (1 or 0), then ops: j or
// l and a subscriber, or r, a user, a room and the user's streams in it on this node.
// Returns 1 when the node was not known (new, reaped, or Redis lost its state), 0
// otherwise.
var announceScript = redis.NewScript(prelude + `
local node = ARGV[3]
local now = now_us()
local fresh = redis.call('ZADD', P .. 'nodes', fmt(now + tonumber(ARGV[4])), node)
if ARGV[5] == '1' then reap_dead(now) end
local set = P .. 'members:' .. node
local n = count()
local i = 6
while i < #ARGV do
  local kind, sub = ARGV[i], ARGV[i + 1]
  if kind == 'r' then
    room_set(node, ARGV[i + 2], sub, tonumber(ARGV[i + 3]), false)
    i = i + 4
  else
    if kind == 'j' then
      n = n + redis.call('SADD', set, sub)
    else
      n = n - redis.call('SREM', set, sub)
    end
    append({'k', kind, 's', sub, 'c', n})
    i = i + 2
  end
end
return fresh
`)

// resyncScript replaces a node's members with the subscribers it really has, silently.
// ARGV: prefix, maxlen, node, ttl in microseconds, subscriber ids...
var resyncScript = redis.NewScript(prelude + `
local set = P .. 'members:' .. ARGV[3]
redis.call('DEL', set)
for i = 5, #ARGV, 1000 do
  redis.call('SADD', set, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('ZADD', P .. 'nodes', fmt(now_us() + tonumber(ARGV[4])), ARGV[3])
return 0
`)

// leaveScript takes a node out of the cluster, announcing that its subscribers left.
// ARGV: prefix, maxlen, node. Returns how many left.
var leaveScript = redis.NewScript(prelude + `
return reap(ARGV[3])
`)

// replayScript reads the retained events after an id. ARGV: prefix, maxlen, after.
// Returns {floor, head, entries...} with entries as XRANGE gives them.
var replayScript = redis.NewScript(prelude + `
local stream = P .. 'stream'
local floor = tonumber(redis.call('GET', P .. 'floor') or '0')
local head = redis.call('GET', P .. 'last') or '0'
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first > 0 then
  -- Entries trimmed for length rather than for history are missed all the same.
  local before = tonumber(first[1][2][2])
  if before > floor then floor = before end
end
local out = {fmt(floor), head}
local from = math.max(tonumber(ARGV[3]), floor)
for _, e in ipairs(redis.call('XRANGE', stream, '(' .. fmt(from) .. '-0', '+')) do
  local f = e[2]
  for i = 1, #f - 1, 2 do
    if f[i] == 'k' then
      if f[i + 1] == 'p' then out[#out + 1] = e end
      break
    end
  end
end
return out
`)
