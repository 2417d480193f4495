"""The shared rate limiter on a real Redis: spacing, many processes, names, max_wait, the client."""

from __future__ import annotations

import multiprocessing
import time
from bisect import bisect_left

import pytest
import redis
from redis import Redis
from scripted_bigpanda import Received, Reply, ScriptedBigPanda

from bridge.bigpanda.client import BigPandaClient
from bridge.errors import TransientError
from bridge.state.ratelimit import RateLimiter

# Stamps are read after the sleep returns, so two releases can land a little closer than their
# slots (uneven Redis reply latency, sleep overshoot); 20 ms off the window absorbs that.
WINDOW = 0.98


def most_in_window(stamps: list[float], width: float = WINDOW) -> int:
    """The largest number of stamps inside any window [t, t + width)."""
    ordered = sorted(stamps)
    return max(bisect_left(ordered, t + width) - i for i, t in enumerate(ordered))


def settled(limiter: RateLimiter) -> RateLimiter:
    """The limiter once its pace is on record: the first caller of a new pace waits a period."""
    limiter.acquire()
    return limiter


def test_a_new_pace_starts_one_period_after_its_first_caller(redis_conn):
    waits: list[float] = []
    RateLimiter(redis_conn, "org", period=1.05, sleep=waits.append).acquire()
    assert waits == [pytest.approx(1.05, abs=0.05)]


def test_one_process_is_paced_to_five_a_second(redis_conn):
    limiter = settled(RateLimiter(redis_conn, "org"))
    stamps = []
    for _ in range(20):
        limiter.acquire()
        stamps.append(time.monotonic())
    elapsed = stamps[-1] - stamps[0]
    print(f"20 acquires: {elapsed:.3f} s, at most {most_in_window(stamps)} in {WINDOW} s")
    assert most_in_window(stamps) <= 5
    assert 3.7 <= elapsed < 4.5


def _acquire_in_a_process(redis_url, name, count, barrier, stamps) -> None:
    limiter = RateLimiter(Redis.from_url(redis_url), name)
    barrier.wait()  # start together: the limiter, not process start-up, must spread the sends
    for _ in range(count):
        limiter.acquire()
        stamps.put(time.time())


def test_processes_sharing_a_name_never_exceed_the_rate_together(redis_url, redis_conn):
    context = multiprocessing.get_context("spawn")
    barrier, stamps = context.Barrier(4), context.Queue()
    args = (redis_url, "org", 8, barrier, stamps)
    workers = [context.Process(target=_acquire_in_a_process, args=args) for _ in range(4)]
    for worker in workers:
        worker.start()
    merged = [stamps.get(timeout=30) for _ in range(32)]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    span = max(merged) - min(merged)
    print(f"4x8 acquires: {span:.3f} s, at most {most_in_window(merged)} in {WINDOW} s")
    assert most_in_window(merged) <= 5
    assert span >= 31 * 0.2 - 0.05  # 32 distinct slots, none shared


def test_different_names_do_not_limit_each_other(redis_conn):
    waits_a: list[float] = []
    waits_b: list[float] = []
    a = RateLimiter(redis_conn, "org-a", sleep=waits_a.append)
    b = RateLimiter(redis_conn, "org-b", sleep=waits_b.append)
    for _ in range(10):
        a.acquire()
    b.acquire()
    assert waits_a[-1] == pytest.approx(1 + 9 * 0.2, abs=0.05)  # org-a's queue: 2.8 s long
    assert waits_b == [pytest.approx(1, abs=0.05)]  # org-b's first caller: its own new pace


def test_a_pace_lost_while_callers_wait_restarts_a_period_later_and_voids_their_slots(
    redis_conn,
):
    slept: list[float] = []

    def flush_while_asleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            redis_conn.flushdb()  # Redis replaced while the third caller waits for its slot

    limiter = RateLimiter(redis_conn, "org", sleep=flush_while_asleep)
    for _ in range(3):
        limiter.acquire()

    # The third slot (0.4 s into the old pace) is void: the caller took the first of a new pace,
    # one period after the loss, past anything the old pace let out.
    assert slept[:3] == [pytest.approx(s, abs=0.05) for s in (1.0, 1.2, 1.4)]
    assert slept[3:] == [pytest.approx(1.0, abs=0.05)]
    assert redis_conn.pttl(limiter.key) == -1  # kept: a missing pace means a lost one


def test_a_pace_recorded_by_another_redis_run_is_a_lost_pace(redis_conn):
    """Redis restarted from a snapshot, or failed over to a replica: the record it holds may be
    older than the pace the callers followed, so its slots (here: free at once) are not used."""
    waits: list[float] = []
    limiter = RateLimiter(redis_conn, "org", sleep=waits.append)
    redis_conn.set(limiter.key, f"{time.time() - 100:.6f} 0123abcd:older-run")

    limiter.acquire()

    assert waits == [pytest.approx(1.0, abs=0.05)]  # a new pace, one period away


def test_a_wait_beyond_max_wait_is_a_transient_429_at_once(redis_conn):
    limiter = RateLimiter(redis_conn, "org", rate=1, period=2, max_wait=2, sleep=lambda s: None)
    limiter.acquire()  # the new pace's first slot, 2 s away
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        limiter.acquire()  # 4 s away
    assert time.monotonic() - started < 0.5
    assert caught.value.http_status == 429
    assert "max_wait" in caught.value.message
    assert caught.value.retry_after == pytest.approx(4, abs=0.5)


def test_a_refused_caller_reserves_no_slot(redis_conn):
    limiter = RateLimiter(redis_conn, "org", rate=2, period=1, max_wait=1.2, sleep=lambda s: None)
    limiter.acquire()  # the new pace's first slot: now + 1.0 (not slept)
    with pytest.raises(TransientError):
        limiter.acquire()  # would be now + 1.5
    time.sleep(0.6)
    limiter.acquire()  # now + 0.9 fits in 1.2; it would be 1.4 had the refusal taken a slot


def test_a_max_wait_shorter_than_the_period_is_refused():
    with pytest.raises(ValueError, match="max_wait >= period"):
        RateLimiter(Redis(), "org", period=10, max_wait=1)


def test_an_unreachable_redis_raises_its_connection_error(tmp_path):
    down = Redis(unix_socket_path=str(tmp_path / "absent.sock"), retry=None)
    with pytest.raises(redis.ConnectionError):
        RateLimiter(down, "org").acquire()


def test_a_client_with_a_limiter_never_sends_more_than_the_rate(redis_conn):
    arrivals: list[float] = []

    def not_found(request: Received) -> Reply:
        arrivals.append(time.time())
        return Reply(404, {"status": 404, "errors": ["not found"]})

    with ScriptedBigPanda(default=not_found) as bigpanda:
        client = BigPandaClient(bigpanda.url, "token", limiter=RateLimiter(redis_conn, "org"))
        assert [client.get(f"plan-{n}") for n in range(12)] == [None] * 12
    print(f"12 GETs: at most {most_in_window(arrivals)} arrivals in {WINDOW} s")
    assert len(arrivals) == 12
    assert most_in_window(arrivals) <= 5
