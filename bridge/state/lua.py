"""The Lua scripts the store runs in Redis: each is one atomic round trip."""

from __future__ import annotations

# Every key of a change expires by itself: `keep` only ever lengthens its time to live.
KEEP_FUNCTION = """
local function keep(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
"""

# The job queued for a change, if one is still waiting: KEYS[1] is the change hash, `prefix` what
# RQ puts before a job id to name its hash (from RQ's API). A job waits while it is marked
# pending, RQ has written it, and no worker has claimed it. A mark whose job RQ never wrote (the
# web process died between the two round trips) waits for nothing: the next event queues anew.
PENDING_JOB = """
local function pending_job(prefix)
  local id = redis.call('HGET', KEYS[1], 'pending')
  if id and redis.call('HEXISTS', KEYS[1], 'unclaimed') == 1
     and redis.call('EXISTS', prefix .. id) == 1 then
    return id
  end
  return nil
end
-- Mark the change pending under a new job id; the caller then enqueues that job through RQ.
local function mark_pending(id)
  redis.call('HSET', KEYS[1], 'pending', id, 'unclaimed', '1')
end
"""

# KEYS: change hash, history list, known-keys set, ledger marker, stats hash, then the new job's
#       hash, RQ's queue list and queue set.
# ARGV: version JSON, decision JSON, "1" if the decision wants a plan, history JSON, RQ's job key
#       prefix, history length, the stats counter prefix ("webhooks:<source>:"), the key of the
#       sender's delivery id ("" when none), the webhook histogram's bucket and sum fields and
#       the seconds to add, the time in ms, the new job's id, "1" for a dry run (preview:
#       the verdict is decided by the same lines, and nothing is written), and the version's
#       bound as "<index>,<largest jump>" ("" when none), then the change's time to live (s)
#       and the shorter one of an ignored event of a change the bridge holds nothing for.
INGEST = (
    KEEP_FUNCTION
    + PENDING_JOB
    + """
local function pending() return pending_job(ARGV[5]) end
local function compare(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = tonumber(a[i]) or 0, tonumber(b[i]) or 0
    if x < y then return -1 elseif x > y then return 1 end
  end
  return 0
end
local dry = ARGV[14] == '1'  -- a preview: the same verdict, nothing written
local known_before = redis.call('EXISTS', KEYS[1]) == 1
local function answer(verdict, job)
  if dry then return {verdict, job or ''} end
  local entry = cjson.decode(ARGV[4])
  entry['result'] = verdict
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  local ttl = tonumber(ARGV[16])
  if verdict == 'ignored' and not known_before then ttl = tonumber(ARGV[17]) end
  keep(KEYS[1], ttl)
  keep(KEYS[2], ttl)
  keep(KEYS[3], ttl)
  redis.call('HINCRBY', KEYS[5], ARGV[7] .. verdict, 1)
  redis.call('HINCRBY', KEYS[5], ARGV[9], 1)
  redis.call('HINCRBYFLOAT', KEYS[5], ARGV[10], ARGV[11])
  if verdict == 'enqueue' or verdict == 'joined' then
    -- the oldest event a reconcile has yet to bring BigPanda to: for the agreed-time histogram
    redis.call('HSETNX', KEYS[1], 'accepted_at', ARGV[12])
  end
  return {verdict, job or ''}
end
-- A version part that jumps too far past the newest seen (ARGV[15]: "<index>,<jump>") would
-- make the change deaf to its next events: refused before anything is written.
if ARGV[15] ~= '' then
  local index, jump = string.match(ARGV[15], '^(%d+),(%d+)$')
  local seen = redis.call('HGET', KEYS[1], 'version')
  local newest = seen and tonumber(cjson.decode(seen)[tonumber(index) + 1]) or 0
  local new = tonumber(cjson.decode(ARGV[1])[tonumber(index) + 1]) or 0
  if new - newest > tonumber(jump) then return {'too_far', string.format('%d', newest)} end
end
-- A delivery the sender names, seen within a day: a redelivery, whatever it holds.
if ARGV[8] ~= '' then
  local seen = dry and redis.call('EXISTS', ARGV[8]) == 1
  if seen or (not dry and not redis.call('SET', ARGV[8], '1', 'NX', 'EX', 86400)) then
    return answer('duplicate')
  end
end
local stored = redis.call('HGET', KEYS[1], 'version')
if stored then
  local order = compare(cjson.decode(ARGV[1]), cjson.decode(stored))
  if order < 0 then return answer('stale') end
  local job = pending()
  if order == 0 and redis.call('HGET', KEYS[1], 'desired') == ARGV[2]
     and (job or redis.call('HEXISTS', KEYS[1], 'unclaimed') == 0) then
    return answer('duplicate', job)
  end
end
if not dry then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'desired', ARGV[2])
  redis.call('SADD', KEYS[3], string.sub(KEYS[1], #'bridge:change:' + 1))
end
local job = pending()
if ARGV[3] == '0' and not job and redis.call('EXISTS', KEYS[4]) == 1
   and redis.call('HEXISTS', KEYS[1], 'plans') == 0
   and redis.call('HEXISTS', KEYS[1], 'create_uncertain') == 0 then
  return answer('ignored')  -- no plan wanted and none remembered: nothing to do
end
if job then return answer('joined', job) end
if not dry then mark_pending(ARGV[13]) end
return answer('enqueue', ARGV[13])
"""
)

# Lengthen a change's time to live. KEYS: its hash and history. ARGV: the time to live (s).
KEEP = (
    KEEP_FUNCTION
    + """
keep(KEYS[1], tonumber(ARGV[1]))
keep(KEYS[2], tonumber(ARGV[1]))
"""
)

# A reconcile asked for without an event (the drift sweep): joins the pending job if any.
# KEYS: change hash. ARGV: RQ's job key prefix, the new job's id.
REQUEST = (
    PENDING_JOB
    + """
local job = pending_job(ARGV[1])
if job then return {'joined', job} end
mark_pending(ARGV[2])
return {'enqueue', ARGV[2]}
"""
)

# The worker takes over the pending job: later events then enqueue a new one. Returns (and
# clears) when the oldest event this reconcile serves was accepted, in ms (false: none).
CLAIM = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pending')
end
redis.call('HDEL', KEYS[1], 'unclaimed')
local accepted = redis.call('HGET', KEYS[1], 'accepted_at')
redis.call('HDEL', KEYS[1], 'accepted_at')
return accepted
"""

# A key lock left by an earlier attempt of the same job (its worker died): deleted, so that the
# retry takes the lock at once. KEYS: the lock. ARGV: "<job id>:", the prefix of its tokens.
RELEASE_ATTEMPT = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
