"""Reads take turns: a few at work at once, the rest served in the order they came; writes,
probes and responses already streaming never wait."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Message, Receive, Scope, Send

from kai.kit.turns import TakingTurns, Turns


async def test_turns_go_in_the_order_asked_and_a_late_comer_cannot_jump_the_queue() -> None:
    turns = Turns(2)
    served: list[int] = []
    release = asyncio.Event()

    async def reader(number: int) -> None:
        await turns.take()
        served.append(number)
        await release.wait()
        turns.give_back()

    first = [asyncio.create_task(reader(n)) for n in range(6)]
    await asyncio.sleep(0.01)
    assert served == [0, 1]
    release.set()
    # Two turns are given back while four wait; one more reader arrives at that moment.
    late = asyncio.create_task(reader(6))
    await asyncio.gather(*first, late)
    assert served == [0, 1, 2, 3, 4, 5, 6]
    assert turns.free == 2
    assert not turns.waiting


async def test_a_reader_that_gives_up_waiting_loses_no_turn() -> None:
    turns = Turns(1)
    await turns.take()
    gives_up = asyncio.create_task(turns.take())
    patient = asyncio.create_task(turns.take())
    await asyncio.sleep(0)
    gives_up.cancel()
    await asyncio.sleep(0)
    turns.give_back()
    await asyncio.wait_for(patient, 1)
    turns.give_back()
    assert turns.free == 1
    assert not turns.waiting


async def test_a_wait_cancelled_just_as_it_is_handed_a_turn_passes_it_on() -> None:
    turns = Turns(1)
    await turns.take()
    unlucky = asyncio.create_task(turns.take())
    patient = asyncio.create_task(turns.take())
    await asyncio.sleep(0)
    # The turn goes to the first waiter, which is cancelled before it runs.
    turns.give_back()
    unlucky.cancel()
    await asyncio.sleep(0)
    await asyncio.wait_for(patient, 1)
    turns.give_back()
    assert turns.free == 1
    assert not turns.waiting


async def test_the_middleware_queues_api_reads_only_until_their_response_starts() -> None:
    at_work = 0
    most = {"GET /api": 0, "POST /api": 0, "GET /healthz": 0}
    streaming = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal at_work
        kind = f"{scope['method']} {'/api' if scope['path'].startswith('/api/') else '/healthz'}"
        at_work += 1
        most[kind] = max(most[kind], at_work)
        await asyncio.sleep(0.02)
        at_work -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/api/v1/export":
            # Streams on after the response started: holds no turn meanwhile.
            await streaming.wait()
        await send({"type": "http.response.body", "body": b"done"})

    transport = httpx.ASGITransport(app=TakingTurns(app, limit=2, most_wait_seconds=10))
    async with httpx.AsyncClient(transport=transport, base_url="http://kai") as client:
        export = asyncio.create_task(client.get("/api/v1/export"))
        await asyncio.sleep(0.05)
        reads = [client.get("/api/v1/search") for _ in range(8)]
        answers = await asyncio.wait_for(asyncio.gather(*reads), 5)
        assert [answer.status_code for answer in answers] == [200] * 8
        assert most["GET /api"] == 2

        most.update({"GET /api": 0})
        writes = [client.post("/api/v1/materials") for _ in range(6)]
        probes = [client.get("/healthz") for _ in range(6)]
        await asyncio.gather(*writes, *probes)
        assert most["POST /api"] > 2
        assert most["GET /healthz"] > 2
        streaming.set()
        assert (await export).text == "done"


async def test_a_read_that_waits_too_long_is_told_to_come_back_and_no_turn_is_lost() -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/api/v1/slow":
            await release.wait()
        elif scope["path"] == "/api/v1/broken":
            raise RuntimeError("a handler that fails")
        elif scope["path"] == "/api/v1/silent":
            return  # never starts a response
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    gate = TakingTurns(app, limit=1, most_wait_seconds=0.2)
    transport = httpx.ASGITransport(app=gate, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kai") as client:
        slow = asyncio.create_task(client.get("/api/v1/slow"))
        await asyncio.sleep(0.05)
        waited = await client.get("/api/v1/materials")
        assert waited.status_code == 503
        assert waited.headers["retry-after"] == "5"
        assert waited.headers["content-type"] == "application/problem+json"
        assert waited.json()["type"].endswith("/busy")
        release.set()
        assert (await slow).status_code == 200

        # A failing handler and one that never answers give their turns back too.
        assert (await client.get("/api/v1/broken")).status_code == 500

        async def nothing() -> Message:
            return {"type": "http.request", "body": b""}

        async def ignored(message: Message) -> None:
            raise AssertionError(message)

        silent = {"type": "http", "method": "GET", "path": "/api/v1/silent", "headers": []}
        await gate(silent, nothing, ignored)
        assert (await client.get("/api/v1/materials")).status_code == 200
    assert gate.turns.free == 1
    assert not gate.turns.waiting
