package redisbus

import "github.com/redis/go-redis/v9"

// The cluster lives in these keys, each under Options.Prefix:
//
//	log           the live log: every event, published and presence, in id order, for
//	              the nodes to read. Entry id "<event id>-0"; fields b (the id of the
//	              entry before it, so that a reader can tell a gap), k (p publish,
//	              j new_user, l user_left; J L g of rooms, rooms.go), then t e d x
//	              (topic, event, data, "1" for plain text) or s c (subscriber, cluster
//	              count). Trimmed to about Options.Slack entries: it is a transport,
//	              not history, so presence churn never pushes a published event out
//	              of history.
//	last          the newest event id handed out, the id of the newest entry
//	floor         ids at or below it are from before this Redis' history began
//	h:TOPIC       the history of one topic ("h:" alone for broadcasts): its retained
//	              events, entry id "<event id>-0", fields e d, and x i z when set
//	              (plain text, idempotency key, bytes counted)
//	topics        topic -> an id at or below its oldest retained event (sorted set):
//	              the order in which age and memory evict; a score that count trimming
//	              left behind is corrected when it comes up
//	floors        topic -> the newest id the topic no longer retains (hash)
//	gone          the floors of forgotten topics, two cells per topic (hash; see sketch)
//	keys          publisher's idempotency key -> "<id> <topic>" of its event (hash)
//	mem           bytes counted for all retained events (see entryBytes, topicBytes)
//	nodes         node -> when it counts as dead, in microseconds (sorted set)
//	members:NODE  the subscribers open on NODE
//	room:TOPIC, rooms:NODE  who is in which room (rooms.go)
//
// Every script starts with ARGV[1] = prefix and ARGV[2] = the log's length cap. The
// scripts name their keys from the prefix, so they suit one Redis (or a primary with
// replicas), not Redis Cluster.
const prelude = `
local P = ARGV[1]
local SLACK = ARGV[2]
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function idof(entry) return tonumber(string.match(entry, '^(%d+)')) end
local function fields(f)
  local m = {}
  for i = 1, #f - 1, 2 do m[f[i]] = f[i + 1] end
  return m
end
-- Ids are microseconds of Redis' clock, bumped past the newest one: ordered across the
-- cluster, and increasing across restarts of Redis even when the keys are lost.
local last = nil
local fresh = false
local NOW = nil
local function next_id(now)
  if not last then
    local v = redis.call('GET', P .. 'last')
    fresh = not v
    last = tonumber(v or '0')
  end
  if now <= last then return last + 1 end
  return now
end
-- append_at adds an entry with id (from next_id) to the log; a script that uses it
-- calls finish at its end, which records the newest id once for all its entries.
local function append_at(id, f)
  local sid = fmt(id)
  if fresh then
    -- A fresh log vouches for nothing before its first event.
    redis.call('SET', P .. 'floor', fmt(id - 1))
    fresh = false
  end
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', SLACK, sid .. '-0', 'b', fmt(last), unpack(f))
  last = id
  return sid
end
local function finish()
  if last then redis.call('SET', P .. 'last', fmt(last)) end
end
-- append adds an entry to the log now and records it as the newest.
local function append(f)
  if not NOW then NOW = now_us() end
  local sid = append_at(next_id(NOW), f)
  finish()
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

// history is the part of the scripts that keeps per-topic history; it follows prelude.
// ARGV[3..5] are the bounds: events per topic, age in microseconds (0: none), bytes
// (0: none).
const history = `
local PER_TOPIC = tonumber(ARGV[3])
local TTL = tonumber(ARGV[4])
local MEM = tonumber(ARGV[5])
local TOPIC_BYTES = ` + topicBytesLua + `
-- sketch names the two cells of gone that remember a forgotten topic's floor.
local function sketch(topic)
  local h = redis.sha1hex(topic)
  return '0:' .. tonumber(string.sub(h, 1, 3), 16), '1:' .. tonumber(string.sub(h, 4, 6), 16)
end
-- drop removes entry e, the oldest of topic, and returns the bytes it was counted for.
local function drop(topic, h, e)
  local f = fields(e[2])
  redis.call('XDEL', h, e[1])
  redis.call('HSET', P .. 'floors', topic, fmt(idof(e[1])))
  if f.i then redis.call('HDEL', P .. 'keys', f.i) end
  return tonumber(f.z or '0')
end
-- created counts a new topic and starts its floor at what the sketch remembers of it.
local function created(topic, id)
  redis.call('ZADD', P .. 'topics', fmt(id), topic)
  local a, b = sketch(topic)
  local cells = redis.call('HMGET', P .. 'gone', a, b)
  local f = math.min(tonumber(cells[1] or '0'), tonumber(cells[2] or '0'))
  if f > 0 then redis.call('HSET', P .. 'floors', topic, fmt(f)) end
  return TOPIC_BYTES + #topic
end
-- forget deletes an emptied topic, whose floor is now id, into the sketch.
local function forget(topic, h, id)
  redis.call('DEL', h)
  redis.call('ZREM', P .. 'topics', topic)
  redis.call('HDEL', P .. 'floors', topic)
  local a, b = sketch(topic)
  for _, cell in ipairs({a, b}) do
    if tonumber(redis.call('HGET', P .. 'gone', cell) or '0') < id then
      redis.call('HSET', P .. 'gone', cell, fmt(id))
    end
  end
  return TOPIC_BYTES + #topic
end
-- evict drops, at most budget times, the oldest retained event of all topics while it
-- is older than the TTL or the bytes counted exceed MEM; it returns the bytes freed.
local function evict(now, mem, budget)
  local freed = 0
  if TTL <= 0 and (MEM <= 0 or mem <= MEM) then return 0 end
  for _ = 1, budget do
    local top = redis.call('ZRANGE', P .. 'topics', 0, 0, 'WITHSCORES')
    if #top == 0 then break end
    local topic, score = top[1], tonumber(top[2])
    if not ((TTL > 0 and score < now - TTL) or (MEM > 0 and mem - freed > MEM)) then break end
    local h = P .. 'h:' .. topic
    local first = redis.call('XRANGE', h, '-', '+', 'COUNT', 1)
    if #first == 0 then
      redis.call('ZREM', P .. 'topics', topic)
    elseif idof(first[1][1]) ~= score then
      redis.call('ZADD', P .. 'topics', fmt(idof(first[1][1])), topic)
    else
      freed = freed + drop(topic, h, first[1])
      local nxt = redis.call('XRANGE', h, '-', '+', 'COUNT', 1)
      if #nxt == 0 then
        freed = freed + forget(topic, h, score)
      else
        redis.call('ZADD', P .. 'topics', fmt(idof(nxt[1][1])), topic)
      end
    end
  end
  return freed
end
`

// publishScript appends published events, in order. ARGV: prefix, slack, the three
// bounds, then six per event: topic, event, data, key (scoped to its publisher; empty
// for none), text ("1" or empty), bytes to count. Returns per event {id, status}:
// status 0 for a new event, 1 for a retry of a retained one (id is the first's), 2
// when the key's retained event differs.
var publishScript = redis.NewScript(prelude + history + `
local now = now_us()
local out = {}
local added = 0
for j = 6, #ARGV - 5, 6 do
  local topic, name, data, key, text, size = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4], ARGV[j + 5]
  local id = next_id(now)
  local answer = nil
  if key ~= '' and PER_TOPIC > 0 then
    local v = fmt(id) .. ' ' .. topic
    if redis.call('HSETNX', P .. 'keys', key, v) == 0 then
      local oid, otopic = string.match(redis.call('HGET', P .. 'keys', key), '^(%d+) (.*)$')
      local e = redis.call('XRANGE', P .. 'h:' .. otopic, oid .. '-0', oid .. '-0')
      if #e == 1 then
        local f = fields(e[1][2])
        if otopic == topic and f.e == name and f.d == data and (f.x or '') == text then
          answer = {oid, 1}
        else
          answer = {oid, 2}
        end
      else
        redis.call('HSET', P .. 'keys', key, v)
      end
    end
  end
  if not answer then
    local f = {'k', 'p', 't', topic, 'e', name, 'd', data}
    if text ~= '' then f[#f + 1] = 'x'; f[#f + 1] = text end
    local sid = append_at(id, f)
    if PER_TOPIC > 0 then
      local h = P .. 'h:' .. topic
      local hf = {'e', name, 'd', data, 'z', size}
      if text ~= '' then hf[#hf + 1] = 'x'; hf[#hf + 1] = text end
      if key ~= '' then hf[#hf + 1] = 'i'; hf[#hf + 1] = key end
      redis.call('XADD', h, sid .. '-0', unpack(hf))
      added = added + tonumber(size)
      local n = redis.call('XLEN', h)
      if n == 1 then added = added + created(topic, id) end
      for _ = PER_TOPIC + 1, n do
        added = added - drop(topic, h, redis.call('XRANGE', h, '-', '+', 'COUNT', 1)[1])
      end
    else
      redis.call('SET', P .. 'floor', sid)
    end
    answer = {sid, 0}
  end
  out[#out + 1] = answer
end
if PER_TOPIC > 0 then
  local mem = redis.call('INCRBY', P .. 'mem', added)
  local freed = evict(now, mem, 4 * #out + 16)
  if freed > 0 then redis.call('DECRBY', P .. 'mem', freed) end
end
finish()
return out
`)

// trimScript evicts what has aged out of history, or what exceeds its bytes, when no
// publish did. ARGV: prefix, slack, the three bounds, budget. Returns 1 when the budget
// ran out before the work did.
var trimScript = redis.NewScript(prelude + history + `
local budget = tonumber(ARGV[6])
local mem = tonumber(redis.call('GET', P .. 'mem') or '0')
local freed = evict(now_us(), mem, budget)
if freed > 0 then redis.call('DECRBY', P .. 'mem', freed) end
if redis.call('ZCARD', P .. 'topics') == 0 then redis.call('SET', P .. 'mem', 0) end
return freed > 0 and 1 or 0
`)

// announceScript keeps a node alive, reaps dead nodes when asked, and appends a
// presence event for each join (j) or leave (l), and for each room count (r) that calls
// for one, then the mark of the last count when no entry carried it. ARGV: prefix,
// slack, node, ttl in microseconds, reap (1 or 0), then ops: j or l and a subscriber, or
// r, a user, a room, the user's streams in it on this node and the count's mark.
// Returns 1 when the node was not known (new, reaped, or Redis lost its state), 0
// otherwise.
var announceScript = redis.NewScript(prelude + `
local node = ARGV[3]
local now = now_us()
local unknown = redis.call('ZADD', P .. 'nodes', fmt(now + tonumber(ARGV[4])), node)
if ARGV[5] == '1' then reap_dead(now) end
local set = P .. 'members:' .. node
local n = count()
local i = 6
local mark = nil -- of the last room count
while i < #ARGV do
  local kind, sub = ARGV[i], ARGV[i + 1]
  if kind == 'r' then
    mark = ARGV[i + 4]
    room_set(node, ARGV[i + 2], sub, tonumber(ARGV[i + 3]), false, mark)
    i = i + 5
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
if mark and mark ~= MARKED then append({'k', 'g', 'n', node, 'q', mark}) end
return unknown
`)

// resyncScript replaces a node's members with the subscribers it really has, silently.
// ARGV: prefix, slack, node, ttl in microseconds, subscriber ids...
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
// ARGV: prefix, slack, node. Returns how many left.
var leaveScript = redis.NewScript(prelude + `
return reap(ARGV[3])
`)
