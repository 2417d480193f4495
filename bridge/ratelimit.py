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

Losing the pace (Redis flushed, replaced, or the key evicted) must not let a burst out: the key
never expires (one short string per organization), so a missing key means a first start or a
lost pace, and the new pace then starts one period after now, past every send the lost one let
out. The key also names its pace (a random generation): a caller that slept until its slot
checks that the pace it was given is still the one on record, and reserves again if not, so
the slots handed out before the loss are not used beside the new ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis

from bridge.errors import TransientError

KEY_PREFIX = "bridge:ratelimit:"

# KEYS[1]: "<TAT> <generation>" (TAT in epoch seconds, Redis clock). ARGV: interval, max_wait,
# period (seconds), a generation for a new pace. Returns {reserved (1 or 0), wait in whole
# microseconds (rounded up, so no caller sends early), the pace's generation}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local record = redis.call('GET', KEYS[1])
if not record then  -- no pace on record: a new one, whose first slot is one period away
  record = string.format('%.6f', now + tonumber(ARGV[3])) .. ' ' .. ARGV[4]
  redis.call('SET', KEYS[1], record)
end
local space = string.find(record, ' ', 1, true)
local tat, generation = tonumber(string.sub(record, 1, space - 1)), string.sub(record, space + 1)
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
        if not name or rate <= 0 or period <= 0 or max_wait < 0:
            raise ValueError("RateLimiter needs a name, rate > 0, period > 0 and max_wait >= 0")
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
