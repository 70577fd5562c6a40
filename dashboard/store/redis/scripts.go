package redis

import goredis "github.com/redis/go-redis/v9"

// The store's Redis state, all under one prefix P (hash-tagged as {P} so a
// cluster keeps the keys of one ring in one slot, as scripts require):
//
//	{P}:meta    hash   epoch (16 hex digits), head (newest seq), oldest
//	                   (oldest retained seq; head+1 when none is)
//	{P}:frames  stream one entry per frame, ID "<seq>-0"
//	{P}:latest  hash   topic → seq of its newest frame
//	{P}:nodes   hash   node → seq of the newest frame it appended
//
// A frame's entry has one field, j: the wire JSON, ID included. Its topic
// and ts are read from it (the encoder writes "id", "topic" and "ts" first,
// in that order), which keeps an entry to one field to store and to parse.
// The last entry of each commit also carries o (the
// oldest retained seq after the commit), c (the appending store's commit
// token), n (its node) and w (its wall clock at the commit, Unix ms). Tails
// read commits whole: an entry with o closes one.
//
// Entry IDs carry livedash's seq, not a time, so retention by age cannot use
// XTRIM MINID with a time: the append script walks the oldest entries'
// ts instead (a handful per append in steady state). `"ts":` cannot occur
// inside the JSON before the ts field itself (a quote inside a JSON string
// is escaped), so the first match is the frame's ts.
//
// Retention is logical: meta's oldest says which frames are retained, and
// readers serve nothing below it. The stream itself keeps a margin of
// already-dropped frames (Options.TailSlack) below the oldest retained one and
// below the first frame of the current commit, so that another instance's
// tail still reads every frame of a commit that dropped frames it had not
// read yet — including frames a commit drops at once (a batch larger than the
// retention, or stamped older than the maximum age).

// initScript creates the ring's epoch if Redis has none — once, atomically:
// every instance runs it at start and all but the first adopt the epoch they
// find. Creating an epoch clears what a previous, lost epoch left behind.
// It returns the epoch, head, oldest, whether it created the epoch, and
// snapshots of the latest and nodes hashes, all as of one moment.
//
// KEYS: meta, frames, latest, nodes. ARGV: a new random epoch.
var initScript = goredis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'epoch')
local created = 0
if not e then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'head', '0', 'oldest', '1')
  e = ARGV[1]
  created = 1
end
local m = redis.call('HMGET', KEYS[1], 'head', 'oldest')
return {e, m[1], m[2], created, redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
`)

// appendScript is the one atomic step of an Append: it checks the epoch,
// assigns the next seqs, adds one entry per frame with the final wire JSON,
// trims to the retention and records the new head and oldest. Redis runs a
// script alone, so seqs are consecutive across every instance appending.
//
// The client sends each frame's JSON without its ID: the bytes after
// `{"id":"<epoch>-<seq>` (they start with `","topic":`), and the script
// prefixes them, so the stored JSON is the wire JSON and no reader splices.
//
// Its first write is the first XADD: a script that fails before it (wrong
// epoch, Redis out of memory) changes nothing, and later writes cannot fail
// once it succeeded (Redis lets a script that has written finish even past
// maxmemory).
//
// KEYS: meta, frames, latest, nodes.
// ARGV: epoch, max frames, age cutoff (Unix ms; "" = no age limit), max
// frames dropped for age, tail slack, the caller's head (Redis's must not be
// behind it), commit token, node, wall clock (Unix ms), n, then per frame:
// topic, ts, JSON after the ID.
// Returns {first seq, oldest after the commit}, or an error reply starting
// with LIVEDASH_EPOCH (the epoch is gone or another) or LIVEDASH_BEHIND
// (Redis lost frames the caller has seen).
var appendScript = goredis.NewScript(`
local meta, frames, latest, nodes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function d(x) return string.format('%d', x) end
local m = redis.call('HMGET', meta, 'epoch', 'head', 'oldest')
if m[1] ~= ARGV[1] then
  return redis.error_reply('LIVEDASH_EPOCH ' .. (m[1] or 'none'))
end
local head, oldest = tonumber(m[2]), tonumber(m[3])
if head < tonumber(ARGV[6]) then
  return redis.error_reply('LIVEDASH_BEHIND ' .. m[2])
end
local maxFrames, n = tonumber(ARGV[2]), tonumber(ARGV[10])
local first, last = head + 1, head + n
local base = 11
local newOldest = oldest
if last - newOldest + 1 > maxFrames then newOldest = last - maxFrames + 1 end
if ARGV[3] ~= '' then
  -- Oldest first, drop frames stamped before the cutoff, at most ARGV[4]
  -- of them, stopping at the first that is not: the stored ones through
  -- XRANGE in growing chunks, then the ones being appended.
  local cutoff, budget, step = tonumber(ARGV[3]), tonumber(ARGV[4]), 1
  while budget > 0 and newOldest <= last do
    if newOldest <= head then
      local want = math.min(step, budget, head - newOldest + 1)
      local es = redis.call('XRANGE', frames, d(newOldest) .. '-0', d(head) .. '-0', 'COUNT', want)
      local stop = false
      for _, e in ipairs(es) do
        local seq = tonumber(string.match(e[1], '^%d+'))
        if seq > newOldest then newOldest = seq end -- frames missing from the stream are gone
        if tonumber(string.match(e[2][2], '"ts":(%-?%d+)')) >= cutoff then stop = true break end
        newOldest = seq + 1
        budget = budget - 1
      end
      if stop then break end
      if #es < want then newOldest = head + 1 end -- the rest of the stored ones are missing
      step = math.min(step * 2, 64)
    else
      if tonumber(ARGV[base + (newOldest - first) * 3 + 1]) >= cutoff then break end
      newOldest = newOldest + 1
      budget = budget - 1
    end
  end
end
local pre = '{"id":"' .. ARGV[1] .. '-'
local lt = {}
for k = 0, n - 1 do
  local i = base + k * 3
  local seq = d(first + k)
  if k < n - 1 then
    redis.call('XADD', frames, seq .. '-0', 'j', pre .. seq .. ARGV[i + 2])
  else
    redis.call('XADD', frames, seq .. '-0', 'j', pre .. seq .. ARGV[i + 2],
      'o', d(newOldest), 'c', ARGV[7], 'n', ARGV[8], 'w', ARGV[9])
  end
  lt[#lt + 1] = ARGV[i]
  lt[#lt + 1] = seq
  if #lt >= 512 then
    redis.call('HSET', latest, unpack(lt))
    lt = {}
  end
end
if #lt > 0 then redis.call('HSET', latest, unpack(lt)) end
redis.call('HSET', meta, 'head', d(last), 'oldest', d(newOldest))
redis.call('HSET', nodes, ARGV[8], d(last))
local keep = math.min(newOldest, first) - tonumber(ARGV[5])
if keep > 1 then redis.call('XTRIM', frames, 'MINID', d(keep) .. '-0') end
return {first, newOldest}
`)

// retireScript replaces the epoch when Redis is behind what an instance has
// seen (it came back from a snapshot older than frames it had committed):
// those seqs would be handed out again for other frames, so the epoch must
// change. Only the epoch the caller knows is retired, and only while Redis
// is still behind, so instances that notice together retire it once.
//
// KEYS: meta, frames, latest, nodes. ARGV: old epoch, the caller's head, a
// new random epoch. Returns 1 when it retired the epoch.
var retireScript = goredis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head')
if m[1] ~= ARGV[1] or tonumber(m[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'epoch', ARGV[3], 'head', '0', 'oldest', '1')
return 1
`)

// seekScript is SeekTime's binary search, run inside Redis so that it costs
// one round trip: the first seq in [lo, hi) whose frame's ts ≥ ms, treating
// a missing frame as older (it was trimmed meanwhile).
//
// KEYS: frames. ARGV: lo, hi, ms.
var seekScript = goredis.NewScript(`
local lo, hi, ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local id = string.format('%d', mid) .. '-0'
  local es = redis.call('XRANGE', KEYS[1], id, id)
  if #es == 0 or tonumber(string.match(es[1][2][2], '"ts":(%-?%d+)')) < ms then lo = mid + 1 else hi = mid end
end
return lo
`)
