"""Rate limits: one contract run in process (on a fake clock), in a table file shared by
processes (on the same clock), and on a real Redis server."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from kai.kit.ratelimit import (
    MemoryRateLimiter,
    RateLimit,
    RateLimitDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    address_key,
    binding_decision,
    create_rate_limiter,
)
from kai.kit.shared_ratelimit import PROBE, SharedMemoryRateLimiter, create_table

# Real time passes between the Redis server's TIME and the test's sleep; this absorbs it.
SLEEP_SLACK = 0.02


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """A limiter, and a way to let time pass for it."""

    limiter: RateLimiter
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server; its absence fails the tests, since CI always has one."""
    url = os.environ.get("KAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    probe = redis.Redis.from_url(url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        probe.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"no Redis server answers at {url} ({error}): start one on 127.0.0.1:6379, "
            "or point KAI_TEST_REDIS_URL at one",
            pytrace=False,
        )
    finally:
        probe.close()
    return url


@pytest.fixture(scope="session")
def redis_admin(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client for inspecting keys behind the limiter's back."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_admin: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"kai-test:{uuid4().hex}:"
    yield prefix
    leftovers = list(redis_admin.scan_iter(match=f"{prefix}*"))
    if leftovers:
        redis_admin.delete(*leftovers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "shared", "redis"])
async def backend(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Backend]:
    limiter: RateLimiter

    async def advance_clock(seconds: float) -> None:
        clock.now += seconds

    advance = advance_clock
    if request.param == "memory":
        limiter = MemoryRateLimiter(clock=clock)
    elif request.param == "shared":
        create_table(tmp_path / "buckets", slots=1024)
        limiter = SharedMemoryRateLimiter(tmp_path / "buckets", clock=clock)

    else:
        # Looked up only here, so that the memory backend's tests run without Redis.
        url = request.getfixturevalue("redis_url")
        limiter = RedisRateLimiter(url, prefix=request.getfixturevalue("redis_prefix"))

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds + SLEEP_SLACK)

        advance = sleep

    yield Backend(limiter, advance)
    await limiter.close()


@pytest.fixture
async def redis_limiter(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(redis_url, prefix=redis_prefix)
    yield limiter
    await limiter.close()


async def hits(limiter: RateLimiter, key: str, limit: RateLimit, count: int) -> list[bool]:
    return [(await limiter.hit(key, limit)).allowed for _ in range(count)]


# The shared contract: both backends must behave alike.


async def test_limit_then_refused_with_retry_after(backend: Backend) -> None:
    limit = RateLimit(5, 60)

    allowed = [await backend.limiter.hit("alice", limit) for _ in range(5)]
    refused = await backend.limiter.hit("alice", limit)

    assert [decision.remaining for decision in allowed] == [4, 3, 2, 1, 0]
    assert all(decision.allowed for decision in allowed)
    assert not refused.allowed
    assert refused.remaining == 0
    # One request comes back every 60 / 5 = 12 seconds.
    assert 11 < refused.retry_after_seconds <= 12
    assert 59 < refused.reset_seconds <= 60
    headers = refused.headers("api", limit)
    assert headers["Retry-After"] == "12"
    assert headers["RateLimit-Reset"] == "60"


async def test_first_request_reports_full_bucket_minus_one(backend: Backend) -> None:
    decision = await backend.limiter.hit("alice", RateLimit(100, 60))

    assert decision == RateLimitDecision(
        allowed=True, limit=100, remaining=99, reset_seconds=0.6, retry_after_seconds=0
    )


async def test_capacity_comes_back_over_time(backend: Backend) -> None:
    limit = RateLimit(2, 0.4)  # one request back every 0.2 s
    assert await hits(backend.limiter, "alice", limit, 3) == [True, True, False]
    refused = await backend.limiter.hit("alice", limit)
    assert 0 < refused.retry_after_seconds <= 0.2

    await backend.advance(refused.retry_after_seconds)

    assert await hits(backend.limiter, "alice", limit, 2) == [True, False]
    await backend.advance(0.4)
    assert (await backend.limiter.hit("alice", limit)).remaining == 1


async def test_half_the_period_gives_back_half_the_requests(backend: Backend) -> None:
    limit = RateLimit(4, 0.8)
    assert await hits(backend.limiter, "alice", limit, 4) == [True] * 4

    await backend.advance(0.4)

    assert await hits(backend.limiter, "alice", limit, 3) == [True, True, False]


async def test_refused_requests_do_not_push_the_wait_further(backend: Backend) -> None:
    limit = RateLimit(1, 0.3)
    await backend.limiter.hit("alice", limit)
    first_refusal = await backend.limiter.hit("alice", limit)

    assert await hits(backend.limiter, "alice", limit, 20) == [False] * 20
    await backend.advance(first_refusal.retry_after_seconds)

    assert (await backend.limiter.hit("alice", limit)).allowed


async def test_keys_are_independent(backend: Backend) -> None:
    limit = RateLimit(3, 60)
    assert await hits(backend.limiter, "alice", limit, 4) == [True, True, True, False]

    bob = await backend.limiter.hit("bob", limit)

    assert bob.allowed
    assert bob.remaining == 2


async def test_burst_allows_more_at_once_than_the_rate(backend: Backend) -> None:
    limit = RateLimit(2, 60, burst=5)

    assert await hits(backend.limiter, "alice", limit, 6) == [True] * 5 + [False]
    refused = await backend.limiter.hit("alice", limit)
    # The sustained rate still rules: one request every 30 seconds.
    assert 29 < refused.retry_after_seconds <= 30
    assert refused.limit == 2


async def test_cost_takes_several_requests_at_once(backend: Backend) -> None:
    limit = RateLimit(10, 60)

    first = await backend.limiter.hit("alice", limit, cost=4)
    too_dear = await backend.limiter.hit("alice", limit, cost=7)
    rest = await backend.limiter.hit("alice", limit, cost=6)

    assert (first.allowed, first.remaining) == (True, 6)
    # Refused without spending: the 6 left are still there for a request that fits.
    assert (too_dear.allowed, too_dear.remaining) == (False, 6)
    assert 5 < too_dear.retry_after_seconds <= 6
    assert (rest.allowed, rest.remaining) == (True, 0)


@pytest.mark.parametrize(("limit", "cost"), [(RateLimit(5, 60), 6), (RateLimit(5, 60, burst=8), 9)])
async def test_cost_beyond_burst_is_an_error(backend: Backend, limit: RateLimit, cost: int) -> None:
    with pytest.raises(ValueError, match="can never pass"):
        await backend.limiter.hit("alice", limit, cost=cost)

    # Nothing was spent by the mistake.
    assert (await backend.limiter.hit("alice", limit)).remaining == limit.capacity - 1


@pytest.mark.parametrize("cost", [0, -1])
async def test_cost_below_one_is_an_error(backend: Backend, cost: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await backend.limiter.hit("alice", RateLimit(5, 60), cost=cost)


async def test_reset_gives_a_full_bucket(backend: Backend) -> None:
    limit = RateLimit(3, 60)
    await hits(backend.limiter, "alice", limit, 4)
    await hits(backend.limiter, "bob", limit, 2)

    await backend.limiter.reset("alice")
    await backend.limiter.reset("nobody")

    assert (await backend.limiter.hit("alice", limit)).remaining == 2
    assert (await backend.limiter.hit("bob", limit)).remaining == 0


async def test_concurrent_requests_get_exactly_the_limit(backend: Backend) -> None:
    limit = RateLimit(10, 60)

    decisions = await asyncio.gather(*(backend.limiter.hit("alice", limit) for _ in range(30)))

    assert sum(decision.allowed for decision in decisions) == 10
    assert sorted(decision.remaining for decision in decisions if decision.allowed) == list(
        range(10)
    )


async def test_headers_of_a_real_refusal(backend: Backend) -> None:
    limit = RateLimit(5, 60)
    await hits(backend.limiter, "alice", limit, 5)

    refused = await backend.limiter.hit("alice", limit)

    assert refused.headers("search", limit) == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "60",
        "RateLimit-Policy": '5;w=60;policy="search"',
        "Retry-After": "12",
    }


# Several buckets at once: a key's own, and the organization's it shares with others.


async def test_a_request_spends_every_bucket_it_passes(backend: Backend) -> None:
    key, shared = RateLimit(5, 60), RateLimit(8, 60)

    decisions = await backend.limiter.hit_all([("key-1", key), ("org", shared)])

    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 4), (True, 7)]
    assert (await backend.limiter.hit("org", shared)).remaining == 6


async def test_the_shared_bucket_runs_out_for_every_key(backend: Backend) -> None:
    key, shared = RateLimit(5, 60), RateLimit(8, 60)
    passed = []
    for index in range(12):
        decisions = await backend.limiter.hit_all([(f"key-{index % 3}", key), ("org", shared)])
        passed.append(all(decision.allowed for decision in decisions))

    # Three keys of five each would allow 12; their shared bucket allows 8.
    assert passed == [True] * 8 + [False] * 4


async def test_a_refusal_by_one_bucket_spends_none(backend: Backend) -> None:
    key, shared = RateLimit(5, 60), RateLimit(2, 60)
    await backend.limiter.hit_all([("key-1", key), ("org", shared)], cost=2)

    refused = await backend.limiter.hit_all([("key-2", key), ("org", shared)])

    assert [decision.allowed for decision in refused] == [True, False]
    assert 29 < refused[1].retry_after_seconds <= 30
    # key-2 was not charged for the request its organization refused.
    assert (await backend.limiter.hit("key-2", key)).remaining == 4
    assert binding_decision(refused) == 1


async def test_concurrent_requests_through_two_buckets_get_the_smaller_limit(
    backend: Backend,
) -> None:
    key, shared = RateLimit(10, 60), RateLimit(6, 60)

    outcomes = await asyncio.gather(
        *(backend.limiter.hit_all([(f"key-{i % 2}", key), ("org", shared)]) for i in range(20))
    )

    assert sum(all(d.allowed for d in decisions) for decisions in outcomes) == 6
    assert (await backend.limiter.hit("key-0", key)).remaining + (
        await backend.limiter.hit("key-1", key)
    ).remaining == 2 * 10 - 6 - 2


def test_the_binding_decision_is_the_tightest() -> None:
    def decision(allowed: bool, remaining: int, retry_after: float) -> RateLimitDecision:
        return RateLimitDecision(allowed, 10, remaining, 1.0, retry_after)

    assert binding_decision([decision(True, 5, 0), decision(True, 2, 0)]) == 1
    assert binding_decision([decision(False, 0, 3), decision(True, 0, 0)]) == 0
    assert binding_decision([decision(False, 0, 3), decision(False, 0, 9)]) == 1
    with pytest.raises(ValueError, match="at least one"):
        binding_decision([])


# Headers, from decisions built by hand.


def test_headers_of_an_allowed_request() -> None:
    decision = RateLimitDecision(
        allowed=True, limit=100, remaining=42, reset_seconds=34.2, retry_after_seconds=0
    )

    assert decision.headers("api", RateLimit(100, 60)) == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "42",
        "RateLimit-Reset": "35",
        "RateLimit-Policy": '100;w=60;policy="api"',
    }


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    decision = RateLimitDecision(
        allowed=False, limit=10, remaining=0, reset_seconds=0.05, retry_after_seconds=0.01
    )

    headers = decision.headers("api", RateLimit(10, 0.5))

    assert headers["Retry-After"] == "1"
    assert headers["RateLimit-Reset"] == "1"
    # The draft has no sub-second windows: the advertised one is rounded up, never down.
    assert headers["RateLimit-Policy"] == '10;w=1;policy="api"'


def test_policy_shows_burst_and_quotes_the_name() -> None:
    decision = RateLimitDecision(
        allowed=True, limit=2, remaining=4, reset_seconds=30, retry_after_seconds=0
    )

    policy = decision.headers('uploads "big"', RateLimit(2, 60, burst=5))["RateLimit-Policy"]

    assert policy == '2;w=60;burst=5;policy="uploads \\"big\\""'


@pytest.mark.parametrize("name", ["", "line\nbreak", "naïve"])
def test_policy_name_that_cannot_go_in_a_header_is_refused(name: str) -> None:
    decision = RateLimitDecision(
        allowed=True, limit=1, remaining=0, reset_seconds=1, retry_after_seconds=0
    )

    with pytest.raises(ValueError, match="printable ASCII"):
        decision.headers(name, RateLimit(1, 1))


# Policies.


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": 0, "period_seconds": 60}, "at least 1 request"),
        ({"limit": -5, "period_seconds": 60}, "at least 1 request"),
        ({"limit": 5, "period_seconds": 0}, "must be positive"),
        ({"limit": 5, "period_seconds": -1}, "must be positive"),
        ({"limit": 5, "period_seconds": math.inf}, "must be positive"),
        ({"limit": 5, "period_seconds": math.nan}, "must be positive"),
        ({"limit": 5, "period_seconds": 60, "burst": 0}, "burst must be at least 1"),
        ({"limit": 2_000_000, "period_seconds": 1}, "one request per microsecond"),
        ({"limit": 1, "period_seconds": 1e9}, "ten years"),
    ],
)
def test_invalid_policy_is_rejected(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimit(**arguments)


def test_burst_defaults_to_the_limit() -> None:
    assert RateLimit(7, 60).capacity == 7
    assert RateLimit(7, 60, burst=3).capacity == 3


# The memory backend's own: its memory stays bounded.


async def test_memory_forgets_buckets_that_are_full_again(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock, sweep_interval_seconds=60)
    for number in range(50):
        await limiter.hit(f"client-{number}", RateLimit(5, 10))
    await hits(limiter, "hourly", RateLimit(1, 3600), 1)
    assert len(limiter) == 51

    clock.now += 61
    await limiter.hit("newcomer", RateLimit(5, 10))

    # Only the bucket still refilling is kept, and it still refuses.
    assert len(limiter) == 2
    assert not (await limiter.hit("hourly", RateLimit(1, 3600))).allowed


async def test_memory_holds_at_most_max_keys(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock, max_keys=100)
    limit = RateLimit(1, 3600)
    await hits(limiter, "busy", limit, 1)

    for number in range(1000):
        await limiter.hit(f"client-{number}", limit)
        if number % 50 == 0:
            # A key in constant use is the last to be forgotten.
            assert not (await limiter.hit("busy", limit)).allowed

    assert len(limiter) == 100


async def test_a_flood_of_addresses_never_evicts_an_organizations_bucket(
    clock: FakeClock,
) -> None:
    limiter = MemoryRateLimiter(clock=clock, max_keys=100, max_address_keys=100)
    expensive = RateLimit(2, 3600)
    organization = "expensive:organization:5f0c"
    await hits(limiter, organization, expensive, 2)
    assert not (await limiter.hit(organization, expensive)).allowed

    # Public routes called from ten thousand addresses (networks, once keyed by /64).
    for number in range(10_000):
        await limiter.hit(f"standard:{address_key(f'2001:db8:{number:x}::1')}", RateLimit(5, 60))

    # The organization's bucket was kept, spent as it was: a full one would let it through.
    assert not (await limiter.hit(organization, expensive)).allowed
    assert len(limiter) == 101  # the address buckets are bounded apart


def test_an_ipv6_caller_is_one_bucket_per_64_and_an_ipv4_caller_per_address() -> None:
    one_host = {address_key(f"2001:db8:aa:bb::{suffix}") for suffix in ("1", "ffff", "1:2:3")}
    assert one_host == {"address:2001:db8:aa:bb::/64"}
    assert address_key("2001:db8:aa:bc::1") != address_key("2001:db8:aa:bb::1")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    # An IPv4 client seen through an IPv6 socket is the same IPv4 client.
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "address:192.0.2.1"
    assert address_key(None) == "address:unknown"
    assert address_key("testclient") == "address:testclient"


def test_memory_refuses_a_useless_size() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryRateLimiter(max_keys=0)
    with pytest.raises(ValueError, match="max_address_keys"):
        MemoryRateLimiter(max_address_keys=0)


# The shared table's own.


def _spend(path: str, key: str, count: int, results: Any) -> None:
    """In another process: `count` requests of `key` against the table at `path`."""

    async def spend() -> None:
        limiter = SharedMemoryRateLimiter(Path(path))
        allowed = [(await limiter.hit(key, RateLimit(50, 3600))).allowed for _ in range(count)]
        await limiter.close()
        results.put(sum(allowed))

    asyncio.run(spend())


def test_processes_sharing_the_table_share_one_budget(tmp_path: Path) -> None:
    create_table(tmp_path / "buckets")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    # Four processes at once, 40 requests each, against a budget of 50 for the hour.
    workers = [
        context.Process(target=_spend, args=(str(tmp_path / "buckets"), "alice", 40, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(results.get(timeout=5) for _ in workers) == 50


async def test_shared_table_keeps_organizations_apart_from_a_flood_of_addresses(
    clock: FakeClock, tmp_path: Path
) -> None:
    create_table(tmp_path / "buckets", slots=256)
    limiter = SharedMemoryRateLimiter(tmp_path / "buckets", clock=clock)
    expensive = RateLimit(2, 3600)
    organization = "expensive:organization:5f0c"
    await hits(limiter, organization, expensive, 2)

    for number in range(5_000):
        await limiter.hit(f"standard:{address_key(f'2001:db8:{number:x}::1')}", RateLimit(5, 60))

    # Still spent: evicted, it would have come back full and let the request through.
    assert not (await limiter.hit(organization, expensive)).allowed
    await limiter.close()


async def test_a_full_table_gives_up_the_bucket_nearest_full(
    clock: FakeClock, tmp_path: Path
) -> None:
    create_table(tmp_path / "buckets", slots=PROBE)
    limiter = SharedMemoryRateLimiter(tmp_path / "buckets", clock=clock)
    hourly = RateLimit(1, 3600)
    # Every slot taken by a spent bucket, the first spent longest ago (nearest full again).
    for number in range(PROBE):
        assert (await limiter.hit(f"key-{number}", hourly)).allowed
        clock.now += 1
    assert (await limiter.hit("newcomer", hourly)).allowed

    assert (await limiter.hit("key-0", hourly)).allowed  # evicted: it came back full
    assert not (await limiter.hit(f"key-{PROBE - 1}", hourly)).allowed  # kept
    await limiter.close()


def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").write_bytes(b"not buckets" * 100)
    with pytest.raises(ValueError, match="not a rate-limit table"):
        SharedMemoryRateLimiter(tmp_path / "other")


# The Redis backend's own.


async def test_two_instances_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    first = RedisRateLimiter(redis_url, prefix=redis_prefix)
    second = RedisRateLimiter(redis_url, prefix=redis_prefix)
    limit = RateLimit(4, 60)

    allowed = [await instance.hit("alice", limit) for instance in (first, second) * 2]
    refused = [await instance.hit("alice", limit) for instance in (first, second)]

    assert [decision.remaining for decision in allowed] == [3, 2, 1, 0]
    assert not any(decision.allowed for decision in refused)
    await first.close()
    await second.close()


async def test_other_prefix_is_another_budget(redis_url: str, redis_prefix: str) -> None:
    tenant_a = RedisRateLimiter(redis_url, prefix=f"{redis_prefix}a:")
    tenant_b = RedisRateLimiter(redis_url, prefix=f"{redis_prefix}b:")
    limit = RateLimit(1, 60)

    assert (await tenant_a.hit("alice", limit)).allowed
    assert (await tenant_b.hit("alice", limit)).allowed
    await tenant_a.close()
    await tenant_b.close()


async def test_keys_live_until_the_bucket_is_full(
    redis_limiter: RedisRateLimiter, redis_admin: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}alice"
    limit = RateLimit(5, 60)

    await redis_limiter.hit("alice", limit)
    assert 11_000 < redis_admin.pttl(key) <= 12_000
    await hits(redis_limiter, "alice", limit, 4)
    assert 59_000 < redis_admin.pttl(key) <= 60_000

    # A refusal writes nothing, so it cannot keep the key alive either.
    stored = redis_admin.get(key)
    await hits(redis_limiter, "alice", limit, 3)
    assert redis_admin.get(key) == stored


async def test_idle_keys_expire(
    redis_limiter: RedisRateLimiter, redis_admin: redis.Redis, redis_prefix: str
) -> None:
    await hits(redis_limiter, "alice", RateLimit(2, 0.2), 2)
    assert redis_admin.exists(f"{redis_prefix}alice")

    await asyncio.sleep(0.2 + SLEEP_SLACK)

    assert not redis_admin.exists(f"{redis_prefix}alice")


async def test_reset_deletes_the_key(
    redis_limiter: RedisRateLimiter, redis_admin: redis.Redis, redis_prefix: str
) -> None:
    await redis_limiter.hit("alice", RateLimit(5, 60))

    await redis_limiter.reset("alice")

    assert not redis_admin.exists(f"{redis_prefix}alice")


async def test_survives_the_server_forgetting_the_script(
    redis_limiter: RedisRateLimiter, redis_admin: redis.Redis
) -> None:
    limit = RateLimit(2, 60)
    await redis_limiter.hit("alice", limit)

    # What a Redis restart or failover does to loaded scripts.
    redis_admin.script_flush()

    assert (await redis_limiter.hit("alice", limit)).remaining == 0


@pytest.mark.parametrize("operation", ["hit", "reset"])
async def test_unreachable_redis_is_unavailable(
    dead_endpoint: str, operation: str, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    limiter = RedisRateLimiter(dead_endpoint.replace("http://", "redis://"))
    started = time.monotonic()

    with pytest.raises(RateLimiterUnavailable) as raised:
        await perform(limiter, operation)

    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"]
    # The caller learns that limits cannot be checked, not where Redis runs or what it said.
    port = dead_endpoint.rsplit(":", 1)[1]
    assert raised.value.detail is not None
    assert port not in raised.value.detail
    assert "refused" not in raised.value.detail.lower()
    [failure] = [line for line in logged() if line["event"] == "ratelimit.redis_failed"]
    assert port in failure["error"]
    # A request waits on this: it must fail fast, not after a long series of retries.
    assert time.monotonic() - started < 2
    await limiter.close()


async def perform(limiter: RateLimiter, operation: str) -> None:
    if operation == "hit":
        await limiter.hit("alice", RateLimit(5, 60))
    else:
        await limiter.reset("alice")


# Choosing the backend.


async def test_without_redis_url_limits_are_in_process() -> None:
    limiter = create_rate_limiter(None)

    assert isinstance(limiter, MemoryRateLimiter)
    assert (await limiter.hit("alice", RateLimit(1, 60))).allowed
    await limiter.close()


async def test_with_a_shared_table_and_no_redis_limits_are_in_the_table(tmp_path: Path) -> None:
    create_table(tmp_path / "buckets")
    limiter = create_rate_limiter(None, shared_table=tmp_path / "buckets")

    assert isinstance(limiter, SharedMemoryRateLimiter)
    assert (await limiter.hit("alice", RateLimit(1, 60))).allowed
    other = create_rate_limiter(None, shared_table=tmp_path / "buckets")
    assert not (await other.hit("alice", RateLimit(1, 60))).allowed
    await limiter.close()
    await other.close()


async def test_with_redis_url_limits_are_in_redis(
    redis_url: str, redis_admin: redis.Redis, redis_prefix: str
) -> None:
    limiter = create_rate_limiter(redis_url, prefix=redis_prefix)

    assert isinstance(limiter, RedisRateLimiter)
    assert (await limiter.hit("alice", RateLimit(1, 60))).allowed
    assert redis_admin.exists(f"{redis_prefix}alice")
    await limiter.close()
