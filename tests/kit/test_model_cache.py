"""The process's model cache stays within its bounds: entries, idle time, one load at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kai.kit.model_cache import ModelCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_model_goes_first_when_the_cache_is_full() -> None:
    evicted: list[str] = []
    cache = ModelCache(size=2, idle_seconds=60)
    cache.put("a", "model a", on_evict=evicted.append)
    cache.put("b", "model b", on_evict=evicted.append)
    assert cache.get("a") == "model a"  # a is now the more recent

    cache.put("c", "model c", on_evict=evicted.append)

    assert cache.keys() == ["a", "c"]
    assert evicted == ["model b"]
    assert cache.get("b") is None


def test_a_model_unused_for_its_idle_time_is_let_go() -> None:
    clock = Clock()
    evicted: list[str] = []
    cache = ModelCache(size=10, idle_seconds=60, clock=clock)
    cache.put("heads", "version 3", on_evict=evicted.append)
    cache.put("backbone", "lite0", on_evict=evicted.append)
    clock.now += 45
    assert cache.get("backbone") == "lite0"  # used: its idle time starts again

    clock.now += 30

    assert cache.keys() == ["backbone"]
    assert evicted == ["version 3"]
    clock.now += 61
    assert cache.get("backbone") is None
    assert evicted == ["version 3", "lite0"]


def test_threads_asking_for_one_model_at_once_load_it_once() -> None:
    cache = ModelCache(size=4, idle_seconds=60)
    loads = 0
    started = threading.Event()

    def load() -> object:
        nonlocal loads
        loads += 1
        started.set()
        time.sleep(0.2)
        return object()

    with ThreadPoolExecutor(4) as threads:
        found = list(threads.map(lambda _: cache.get_or_load("lite0", load), range(4)))

    assert loads == 1
    assert all(model is found[0] for model in found)


def test_a_failed_load_is_tried_again_by_the_next_caller() -> None:
    cache = ModelCache(size=4, idle_seconds=60)
    tries = iter([RuntimeError("weights missing"), "loaded"])

    def load() -> str:
        answer = next(tries)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(RuntimeError, match="weights missing"):
        cache.get_or_load("lite0", load)
    assert cache.get_or_load("lite0", load) == "loaded"


def test_smaller_bounds_apply_at_once() -> None:
    evicted: list[int] = []
    cache = ModelCache(size=5, idle_seconds=60)
    for number in range(5):
        cache.put(number, number, on_evict=evicted.append)

    cache.configure(size=2, idle_seconds=60)

    assert cache.keys() == [3, 4]
    assert evicted == [0, 1, 2]
