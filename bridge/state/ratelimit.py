"""A rate limiter shared through Redis by every worker process on every host.

Algorithm: GCRA (generic cell rate algorithm) in its "virtual scheduling" form, with no burst
allowance. Redis holds one value per limiter, the next free send slot (the theoretical arrival
time, TAT) in Redis server time. `acquire()` runs one Lua script, atomic in Redis, that reserves
the slot `max(now, TAT)` for its caller, moves TAT one interval (`period / rate`) past it and
returns how long the caller must sleep until its slot. Callers are therefore served in the order
they reach Redis, nobody polls, and a burst of N callers gets N distinct slots spaced by the
interval. A caller whose slot is more than `max_wait` away reserves nothing and gets a
TransientError (429), so the job is retried later instead of holding a worker.

Guarantee: reserved slots are at least `period / rate` apart, so any window of `period` seconds
(half-open) holds at most `rate` of them. A caller never sends before its slot; it may send a
little after it (the Redis reply's latency and sleep overshoot), and only uneven lateness between
two callers can bring their sends closer than the interval. Pass a slightly longer `period` for
a safety margin against that and against network jitter on the way to the API.

Time comes from Redis (`TIME`), not from the hosts, so workers with skewed clocks agree. Needs
Redis 5 or newer (scripts replicated by effects).

Losing the pace must not let a burst out. The key never expires (one short string per
organization) and its pace is named by a generation that begins with the Redis server's run_id,
so the script sees a lost pace: no record (a first start, Redis flushed or replaced, the key
evicted) or a record from another server run (Redis restarted from a snapshot or failed over to
a replica, which may hold an older pace). A new pace then starts one period later, past every
send the lost one let out. A caller that slept until its slot checks that its generation is
still the one on record, and reserves again if not, so slots handed out before the loss are not
used beside the new ones. (Until some caller reserves after a restart, the record keeps the old
generation and sleepers send on their old slots: all from one pace, before the new one starts.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis

from ..errors import TransientError

KEY_PREFIX = "bridge:pace:"  # not the former bridge:ratelimit:, whose records had no generation

# KEYS[1]: "<TAT> <generation>" (TAT in epoch seconds, Redis clock). ARGV: interval, max_wait,
# period (seconds), a random suffix for a new generation. Returns {reserved (1 or 0), wait in
# whole microseconds (rounded up, so no caller sends early), the pace's generation}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local tat, generation
local record = redis.call('GET', KEYS[1])
if record then
  local space = string.find(record, ' ', 1, true)
  tat, generation = tonumber(string.sub(record, 1, space - 1)), string.sub(record, space + 1)
end
if not record or string.sub(generation, 1, #run + 1) ~= run .. ':' then
  -- a lost pace: the new one's first slot is one period away
  tat, generation = now + tonumber(ARGV[3]), run .. ':' .. ARGV[4]
  redis.call('SET', KEYS[1], string.format('%.6f', tat) .. ' ' .. generation)
end
local slot = math.max(now, tat)
local wait = slot - now
if wait > tonumber(ARGV[2]) then
  return {0, math.ceil(wait * 1000000), generation}
end
-- '%.6f' keeps microseconds: Lua's tostring would round an epoch to 14 significant digits.
redis.call('SET', KEYS[1], string.format('%.6f', slot + tonumber(ARGV[1])) .. ' ' .. generation)
return {1, math.ceil(wait * 1000000), generation}
"""


class RateLimiter:
    """At most `rate` sends per `period` seconds for all holders of `name`, across processes."""

    def __init__(
        self,
        redis: redis.Redis,
        name: str,
        rate: float = 5.0,
        period: float = 1.0,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not name or rate <= 0 or period <= 0 or max_wait < period:
            # max_wait >= period: else the first caller of every new pace would be refused
            raise ValueError("RateLimiter needs a name, rate > 0, period > 0, max_wait >= period")
        self.key = KEY_PREFIX + name
        self._redis = redis
        self._interval = period / rate
        self._period = period
        self._max_wait = max_wait
        self._sleep = sleep
        # register_script talks to Redis only when called (EVALSHA, falling back to EVAL).
        self._reserve = redis.register_script(_RESERVE)

    def acquire(self) -> None:
        """Block until this caller may send one request; TransientError(429) past max_wait."""
        while not self._wait_for_a_slot():
            pass  # the pace was lost while we waited: our slot is void, take one in the new pace

    def _wait_for_a_slot(self) -> bool:
        """Reserve a slot and sleep until it; False if the pace changed in the meantime."""
        args = [self._interval, self._max_wait, self._period, uuid.uuid4().hex[:12]]
        reserved, wait_us, generation = self._reserve(keys=[self.key], args=args)
        wait = wait_us / 1_000_000
        if not reserved:
            # The queue ahead is `wait` seconds long: a retry sooner would only be refused again.
            raise TransientError(429, "rate limiter: waited longer than max_wait", retry_after=wait)
        if wait <= 0:
            return True  # a slot of the pace on record right now
        self._sleep(wait)
        record = self._redis.get(self.key)
        return record is not None and record.endswith(b" " + generation)
