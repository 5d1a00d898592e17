"""Rate limits by GCRA: in process for a single instance, in Redis when several share a budget.

GCRA (the generic cell rate algorithm) is a token bucket kept as one number per key, the
"theoretical arrival time" (TAT): the moment the bucket would be full again. Each request
moves it `cost` emission intervals (`period / limit`) into the future, and is refused when
that would put it more than the bucket's capacity (`burst` intervals) ahead of now. Both
backends run the same integer arithmetic in microseconds, so they decide alike and exactly.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from kai.kit.errors import KaiError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

DEFAULT_PREFIX = "kai:ratelimit:"
# What a caller is told when Redis fails: its own words (addresses, versions) go to the log.
_UNAVAILABLE = "Rate limits cannot be checked just now; try again shortly."

log = structlog.get_logger(__name__)

_MICROSECONDS = 1_000_000
# Redis runs Lua on doubles, exact for integers below 2**53: in µs since 1970, until 2255.
# Ten years of refill on top of the wall clock stays far inside that.
_MAX_REFILL_SECONDS = 10 * 365 * 24 * 3600
# Printable ASCII: what a quoted string in RateLimit-Policy may carry.
_POLICY_NAME = re.compile(r"[\x20-\x7e]+")
# Buckets of callers known only by their address carry this subject prefix (`address_key`).
ADDRESS_PREFIX = "address:"
# An IPv6 customer is given a /64 at least (often a /56 or /48): one bucket per /64, or one
# host could take a fresh bucket with each of its 2**64 addresses.
IPV6_NETWORK_BITS = 64


# The rate class the current request's route declared: "" in a request whose route declared
# none (a probe), None outside any request (a job, a command). Work that only routes of the
# `expensive` class may start checks it, so a new route that starts such work and forgets
# the class fails loudly in its first test instead of going unlimited.
declared_rate_class: ContextVar[str | None] = ContextVar("kai_declared_rate_class", default=None)


def address_key(host: str | None) -> str:
    """The bucket subject of a caller known only by its address: an IPv4 address as it is, an
    IPv6 address by its /64 (an IPv4-mapped one as the IPv4 address it carries)."""
    if not host:
        return f"{ADDRESS_PREFIX}unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Not an address (a test transport's name, a proxy's label): kept, bounded in length.
        return ADDRESS_PREFIX + host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{ADDRESS_PREFIX}{address.ipv4_mapped}"
        host_bits = 128 - IPV6_NETWORK_BITS
        network = ipaddress.IPv6Address(int(address) >> host_bits << host_bits)
        return f"{ADDRESS_PREFIX}{network}/{IPV6_NETWORK_BITS}"
    return f"{ADDRESS_PREFIX}{address}"


def is_address_bucket(key: str) -> bool:
    # Keys are `{rate class}:{subject}`; an address subject is `address:...`.
    return key.startswith(ADDRESS_PREFIX) or key.partition(":")[2].startswith(ADDRESS_PREFIX)


class RateLimiterUnavailable(KaiError):
    status, type, title = 503, "rate-limiter-unavailable", "The rate limiter is unavailable"


@dataclass(frozen=True)
class RateLimit:
    """`limit` requests per `period_seconds`, with bursts up to `burst` (default = limit)."""

    limit: int
    period_seconds: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a rate limit allows at least 1 request, not {self.limit}")
        if not (math.isfinite(self.period_seconds) and self.period_seconds > 0):
            raise ValueError(f"a rate limit's period must be positive, not {self.period_seconds}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"a rate limit's burst must be at least 1, not {self.burst}")
        if self.period_seconds * _MICROSECONDS / self.limit < 1:
            raise ValueError("a rate limit may allow at most one request per microsecond")
        if self.period_seconds * self.capacity / self.limit > _MAX_REFILL_SECONDS:
            raise ValueError("a rate limit's bucket may take at most ten years to refill")

    @property
    def capacity(self) -> int:
        """The most requests allowed at once: `burst`, or `limit` when no burst is set."""
        return self.limit if self.burst is None else self.burst

    @property
    def interval_us(self) -> int:
        """Microseconds between requests at the sustained rate (GCRA's emission interval)."""
        return round(self.period_seconds * _MICROSECONDS / self.limit)

    def check_cost(self, cost: int) -> None:
        """Raise ValueError for a cost that no amount of waiting could let through."""
        if cost < 1:
            raise ValueError(f"a request costs at least 1, not {cost}")
        if cost > self.capacity:
            raise ValueError(
                f"a request costing {cost} can never pass a limit with a burst of {self.capacity}"
            )


@dataclass(frozen=True)
class RateLimitDecision:
    """Whether one request may pass, and what the client should be told either way."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float

    def headers(self, policy_name: str, limit: RateLimit) -> dict[str, str]:
        """Response headers in the style of the IETF draft "RateLimit header fields for HTTP"."""
        if not _POLICY_NAME.fullmatch(policy_name):
            raise ValueError(f"a policy name must be printable ASCII, not {policy_name!r}")
        quoted = policy_name.replace("\\", "\\\\").replace('"', '\\"')
        # The draft knows no sub-second windows; rounding up advertises a stricter policy.
        policy = f"{limit.limit};w={math.ceil(limit.period_seconds)}"
        if limit.capacity != limit.limit:
            policy += f";burst={limit.capacity}"
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_seconds)),
            "RateLimit-Policy": f'{policy};policy="{quoted}"',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_seconds)))
        return headers


class RateLimiter(Protocol):
    """Counts requests per key against a RateLimit; shared by every caller of one instance."""

    async def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitDecision:
        """Count a request of `cost` against `key`, unless that would exceed `limit`."""

    async def hit_all(
        self, buckets: Sequence[tuple[str, RateLimit]], *, cost: int = 1
    ) -> list[RateLimitDecision]:
        """Count a request against every bucket, or against none when any would refuse it.

        One decision per bucket, as that bucket alone would decide; the request passes when
        all of them allow it. Checked and spent at once, so concurrent requests cannot slip
        between the buckets.
        """

    async def reset(self, key: str) -> None:
        """Forget `key`'s usage: its next request finds a full bucket."""

    async def close(self) -> None:
        """Release connections; the limiter is unusable afterwards."""


def binding_decision(decisions: Sequence[RateLimitDecision]) -> int:
    """Which of a request's decisions to tell the client about: the refusal that asks for the
    longest wait, or, when every bucket allowed it, the one with the least left."""
    if not decisions:
        raise ValueError("a request passes at least one bucket")
    refused = [index for index, decision in enumerate(decisions) if not decision.allowed]
    if refused:
        return max(refused, key=lambda index: decisions[index].retry_after_seconds)
    return min(range(len(decisions)), key=lambda index: decisions[index].remaining)


def gcra(
    stored_tat: int | None, now: int, limit: RateLimit, cost: int
) -> tuple[int | None, RateLimitDecision]:
    """The TAT to store (None when refused) and the decision; the Lua script mirrors this."""
    interval, capacity = limit.interval_us, limit.capacity * limit.interval_us
    tat = now if stored_tat is None else max(stored_tat, now)
    new_tat = tat + cost * interval
    retry_after = new_tat - capacity - now
    if retry_after > 0:
        # A refused request leaves the bucket as it was, so waiting is enough to get through.
        remaining = max(0, (capacity - (tat - now)) // interval)
        return None, _decision(limit, False, remaining, tat - now, retry_after)
    remaining = (capacity - (new_tat - now)) // interval
    return new_tat, _decision(limit, True, remaining, new_tat - now, 0)


def _decision(
    limit: RateLimit, allowed: bool, remaining: int, reset_us: int, retry_after_us: int
) -> RateLimitDecision:
    return RateLimitDecision(
        allowed=allowed,
        limit=limit.limit,
        remaining=remaining,
        reset_seconds=reset_us / _MICROSECONDS,
        retry_after_seconds=retry_after_us / _MICROSECONDS,
    )


class MemoryRateLimiter:
    """Buckets in this process: the embedded run, or one instance alone.

    Safe within one event loop, as `hit` never awaits between reading and writing a bucket.
    Buckets that are full again are dropped every `sweep_interval_seconds` (losing nothing:
    an absent bucket is a full one). Past `max_address_keys` buckets of callers known by
    their address only, the least recently used of those go first; past `max_keys` others
    (credentials', organizations'), the least recently used of those. The two are counted
    apart, so a flood from many addresses never evicts an organization's bucket (which
    would come back full).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        max_address_keys: int = 100_000,
        sweep_interval_seconds: float = 60.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        if max_address_keys < 1:
            raise ValueError(f"max_address_keys must be at least 1, not {max_address_keys}")
        self._clock = clock
        self._sweep_interval = round(sweep_interval_seconds * _MICROSECONDS)
        # (buckets, the most kept): credentials' and organizations', then addresses'.
        self._pools: tuple[tuple[OrderedDict[str, int], int], ...] = (
            (OrderedDict(), max_keys),
            (OrderedDict(), max_address_keys),
        )
        self._next_sweep = self._now() + self._sweep_interval

    def __len__(self) -> int:
        """How many buckets are held in memory."""
        return sum(len(tats) for tats, _ in self._pools)

    def _now(self) -> int:
        return round(self._clock() * _MICROSECONDS)

    def _tats(self, key: str) -> OrderedDict[str, int]:
        return self._pools[1 if is_address_bucket(key) else 0][0]

    async def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitDecision:
        """Count a request of `cost` against `key`, unless that would exceed `limit`."""
        return (await self.hit_all([(key, limit)], cost=cost))[0]

    async def hit_all(
        self, buckets: Sequence[tuple[str, RateLimit]], *, cost: int = 1
    ) -> list[RateLimitDecision]:
        """Count a request against every bucket, or against none when any would refuse it."""
        for _, limit in buckets:
            limit.check_cost(cost)
        now = self._now()
        if now >= self._next_sweep:
            self._sweep(now)
        outcomes = [gcra(self._tats(key).get(key), now, limit, cost) for key, limit in buckets]
        if all(new_tat is not None for new_tat, _ in outcomes):
            for (key, _), (new_tat, _) in zip(buckets, outcomes, strict=True):
                assert new_tat is not None
                self._tats(key)[key] = new_tat
        for key, _ in buckets:
            tats = self._tats(key)
            if key in tats:
                # Refused requests count as use too: a key being hammered is the last to forget.
                tats.move_to_end(key)
        for tats, most in self._pools:
            while len(tats) > most:
                tats.popitem(last=False)
        return [decision for _, decision in outcomes]

    def _sweep(self, now: int) -> None:
        for tats, _ in self._pools:
            for key in [key for key, tat in tats.items() if tat <= now]:
                del tats[key]
        self._next_sweep = now + self._sweep_interval

    async def reset(self, key: str) -> None:
        """Forget `key`'s usage: its next request finds a full bucket."""
        self._tats(key).pop(key, None)

    async def close(self) -> None:
        """Drop every bucket."""
        for tats, _ in self._pools:
            tats.clear()


# KEYS: the buckets; ARGV[1]: the cost, then each bucket's emission interval and capacity in
# µs. Mirrors `gcra` for each bucket, and stores the new TATs only when every bucket allows
# the request. TIME is the server's clock, the one every instance shares. Numbers are written
# with %d: Lua's own tostring keeps only 14 digits. A key lives until its bucket is full again.
_GCRA_SCRIPT = """
local cost = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local replies = {}
local new_tats = {}
local all_allowed = true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local retry_after = new_tat - capacity - now
  local at = 4 * (i - 1)
  if retry_after > 0 then
    all_allowed = false
    replies[at + 1] = 0
    replies[at + 2] = math.max(0, math.floor((capacity - (tat - now)) / interval))
    replies[at + 3] = tat - now
    replies[at + 4] = retry_after
  else
    new_tats[i] = new_tat
    replies[at + 1] = 1
    replies[at + 2] = math.floor((capacity - (new_tat - now)) / interval)
    replies[at + 3] = new_tat - now
    replies[at + 4] = 0
  end
end
if all_allowed then
  for i, key in ipairs(KEYS) do
    local ttl_ms = math.ceil((new_tats[i] - now) / 1000)
    redis.call('SET', key, string.format('%d', new_tats[i]), 'PX', ttl_ms)
  end
end
return replies
"""


class RedisRateLimiter:
    """Buckets in Redis, one key each under `prefix`, shared by every instance using it."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        # Imported here: redis takes a noticeable part of a second, and `import kai` should not.
        from redis.asyncio import Redis
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.exceptions import RedisError
        from redis.retry import Retry

        self._prefix = prefix
        self._errors = RedisError
        # A request waits on its rate limit: fail within a second or two, not after redis-py's
        # default ten retries. Options in the URL's query string still take precedence.
        self._redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=2),
        )
        # Sent by SHA (EVALSHA); loaded into the server on first use, or after it restarts.
        self._script: AsyncScript = self._redis.register_script(_GCRA_SCRIPT)

    async def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitDecision:
        """Count a request of `cost` against `key`, unless that would exceed `limit`."""
        return (await self.hit_all([(key, limit)], cost=cost))[0]

    async def hit_all(
        self, buckets: Sequence[tuple[str, RateLimit]], *, cost: int = 1
    ) -> list[RateLimitDecision]:
        """Count a request against every bucket, or against none when any would refuse it."""
        args: list[int] = [cost]
        for _, limit in buckets:
            limit.check_cost(cost)
            args += [limit.interval_us, limit.capacity * limit.interval_us]
        try:
            reply = await self._script(keys=[self._prefix + key for key, _ in buckets], args=args)
        except self._errors as error:
            raise _unavailable(error) from error
        values = [int(value) for value in reply]
        decisions = []
        for index, (_, limit) in enumerate(buckets):
            allowed, remaining, reset_us, retry_after_us = values[4 * index : 4 * index + 4]
            decisions.append(_decision(limit, allowed == 1, remaining, reset_us, retry_after_us))
        return decisions

    async def reset(self, key: str) -> None:
        """Forget `key`'s usage: its next request finds a full bucket."""
        try:
            await self._redis.delete(self._prefix + key)
        except self._errors as error:
            raise _unavailable(error) from error

    async def close(self) -> None:
        """Close the connections to Redis."""
        await self._redis.aclose()


def _unavailable(error: Exception) -> RateLimiterUnavailable:
    log.error("ratelimit.redis_failed", error=f"{type(error).__name__}: {error}")
    return RateLimiterUnavailable(_UNAVAILABLE, headers={"Retry-After": "5"})


def create_rate_limiter(
    redis_url: str | None, *, prefix: str = DEFAULT_PREFIX, shared_table: Path | None = None
) -> RateLimiter:
    """A Redis-backed limiter when `redis_url` is given; else one shared through the table file
    of `kai serve --workers` when there is one; else one in this process."""
    if redis_url:
        return RedisRateLimiter(redis_url, prefix=prefix)
    if shared_table is not None:
        from kai.kit.shared_ratelimit import SharedMemoryRateLimiter

        return SharedMemoryRateLimiter(shared_table)
    return MemoryRateLimiter()
