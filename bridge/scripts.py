"""The Lua scripts the store runs in Redis: each is one atomic round trip."""

from __future__ import annotations

# The job queued for a key, if one is still waiting: KEYS[1] is the change hash, `prefix` RQ's.
# A job marked pending a moment ago may not be written yet (the web process enqueues it right
# after this script): for ENQUEUE_GRACE_MS it counts as pending; later, as lost.
ENQUEUE_GRACE_MS = 2000
PENDING_JOB = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function pending_job(prefix)
  local id = redis.call('HGET', KEYS[1], 'pending')
  if not id then return nil end
  local status = redis.call('HGET', prefix .. id, 'status')
  if status == 'queued' or status == 'scheduled' or status == 'deferred' then return id end
  local marked = tonumber(redis.call('HGET', KEYS[1], 'pending_at') or '0')
  if not status and now_ms() - marked < GRACE_MS then return id end
  return nil  -- the job started (it reads the newest state) or its enqueue failed
end
""".replace("GRACE_MS", str(ENQUEUE_GRACE_MS))

# KEYS: change hash, history list, known-keys set, ledger marker, stats hash.
# ARGV: version JSON, decision JSON, "1" if the decision wants a plan, new job id, history JSON,
#       RQ's job key prefix, history length, the stats counter prefix ("webhooks:<source>:").
INGEST = (
    PENDING_JOB
    + """
local function pending() return pending_job(ARGV[6]) end
local function compare(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = tonumber(a[i]) or 0, tonumber(b[i]) or 0
    if x < y then return -1 elseif x > y then return 1 end
  end
  return 0
end
local function answer(verdict, job)
  local entry = cjson.decode(ARGV[5])
  entry['result'] = verdict
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
  redis.call('HINCRBY', KEYS[5], ARGV[8] .. verdict, 1)
  return {verdict, job or ''}
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
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'desired', ARGV[2])
redis.call('SADD', KEYS[3], string.sub(KEYS[1], #'bridge:change:' + 1))
local job = pending()
if ARGV[3] == '0' and not job and redis.call('EXISTS', KEYS[4]) == 1
   and redis.call('HEXISTS', KEYS[1], 'plans') == 0
   and redis.call('HEXISTS', KEYS[1], 'create_uncertain') == 0 then
  return answer('ignored')  -- no plan wanted and none remembered: nothing to do
end
if job then return answer('joined', job) end
redis.call('HSET', KEYS[1], 'pending', ARGV[4], 'unclaimed', '1', 'pending_at', now_ms())
return answer('enqueue', ARGV[4])
"""
)

# A reconcile asked for without an event (the drift sweep): joins the pending job if any.
# KEYS: change hash. ARGV: new job id, RQ's job key prefix.
REQUEST = (
    PENDING_JOB
    + """
local job = pending_job(ARGV[2])
if job then return {'joined', job} end
redis.call('HSET', KEYS[1], 'pending', ARGV[1], 'unclaimed', '1', 'pending_at', now_ms())
return {'enqueue', ARGV[1]}
"""
)

# The web process could not enqueue the job it was told to: let the next event try again.
# KEYS: change hash. ARGV: the job id.
RELEASE = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pending', 'pending_at')
end
"""

# The worker takes over the pending job: later events then enqueue a new one.
CLAIM = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pending')
end
redis.call('HDEL', KEYS[1], 'unclaimed')
"""
