"""A/B tests between model versions: deterministic assignment, observations from every
recognition, a Bayesian decision that may be looked at after every answer, promotion or
rollback with its events, and shadow mode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient

from kai.kit.db import act_for
from kai.ml import experiments
from kai.ml.models import ExperimentObservation, ModelExperiment, ModelVersion
from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.recognition.test_recognitions import _brass_photo, _catalog, _train
from tests.vision.textures import checks, jpeg

pytestmark = pytest.mark.database

CHAMPION, CHALLENGER = experiments.CHAMPION, experiments.CHALLENGER


def _experiment(**overrides: Any) -> ModelExperiment:
    values: dict[str, Any] = {
        "id": uuid.UUID("01934a2b-0000-7000-8000-000000000001"),
        "mode": "split",
        "challenger_share": 0.5,
        "min_feedback": 30,
        "max_recognitions": None,
        "ends_at": None,
        "loss_threshold": 0.005,
    }
    return ModelExperiment(**{**values, **overrides})


def _figures(right: dict[str, int], judged: dict[str, int], recognitions: int = 0) -> Any:
    wrong = {name: judged[name] - right[name] for name in judged}
    return {
        "variants": {name: {"judged": judged[name]} for name in judged},
        "comparison": experiments.compare(right, wrong, seed=7),
        "recognitions": recognitions,
    }


def test_the_same_subject_always_sees_the_same_variant_and_shares_are_kept() -> None:
    experiment = _experiment(challenger_share=0.2)
    seen = [experiments.variant_of(experiment, f"user-{index}") for index in range(4000)]
    assert [experiments.variant_of(experiment, f"user-{index}") for index in range(4000)] == seen
    assert seen.count(CHALLENGER) / len(seen) == pytest.approx(0.2, abs=0.02)
    # Another test shuffles subjects anew.
    other = _experiment(id=uuid.uuid4(), challenger_share=0.2)
    assert [experiments.variant_of(other, f"user-{index}") for index in range(4000)] != seen


def test_a_clear_result_decides_and_too_little_feedback_does_not() -> None:
    now = datetime.now(UTC)
    experiment = _experiment(min_feedback=30)
    better = _figures({CHAMPION: 300, CHALLENGER: 370}, {CHAMPION: 400, CHALLENGER: 400})
    decided = experiments.verdict(experiment, better, now=now)
    assert decided is not None
    assert decided[0] == "promoted"
    assert "better with probability 1.000" in decided[1]
    worse = _figures({CHAMPION: 370, CHALLENGER: 300}, {CHAMPION: 400, CHALLENGER: 400})
    assert experiments.verdict(experiment, worse, now=now)[0] == "kept"  # type: ignore[index]
    # A striking start on a few answers is not a result.
    early = _figures({CHAMPION: 5, CHALLENGER: 20}, {CHAMPION: 20, CHALLENGER: 20})
    assert experiments.verdict(experiment, early, now=now) is None
    # Close and uncertain: it goes on, until its budget is spent; then the champion stays.
    close = _figures({CHAMPION: 80, CHALLENGER: 82}, {CHAMPION: 100, CHALLENGER: 100}, 900)
    assert experiments.verdict(experiment, close, now=now) is None
    budgeted = _experiment(max_recognitions=900)
    spent = experiments.verdict(budgeted, close, now=now)
    assert spent is not None
    assert spent[0] == "kept"
    assert spent[1].startswith("The budget is spent without a clear result")
    timed = _experiment(ends_at=now - timedelta(minutes=1))
    assert experiments.verdict(timed, close, now=now)[0] == "kept"  # type: ignore[index]


def test_looking_after_every_twenty_answers_rarely_promotes_a_worse_challenger() -> None:
    """The rule is checked as the periodic judge uses it, after every few answers, on tests
    whose challenger is truly worse (75 % right against 80 %): it seldom picks it."""
    rng = np.random.default_rng(2026)
    experiment = _experiment(min_feedback=100)
    wrong_picks = 0
    tests = 60
    for _ in range(tests):
        champion = rng.random(600) < 0.80
        challenger = rng.random(600) < 0.75
        for seen in range(20, 601, 20):
            right = {CHAMPION: int(champion[:seen].sum()), CHALLENGER: int(challenger[:seen].sum())}
            found = _figures(right, {CHAMPION: seen, CHALLENGER: seen}, 2 * seen)
            decided = experiments.verdict(experiment, found, now=datetime.now(UTC))
            if decided is not None:
                wrong_picks += decided[0] == "promoted"
                break
    assert wrong_picks / tests <= 0.05


async def _recognize(
    client: AsyncClient, owner: Member, subject: str, photo: bytes | None = None
) -> dict[str, Any]:
    answered = await client.post(
        "/api/v1/recognitions",
        files={"file": ("photo.jpg", photo or _brass_photo(), "image/jpeg")},
        data={"subject": subject, "similar_k": "0"},
        headers=owner.headers,
    )
    assert answered.status_code == 201, answered.text
    body: dict[str, Any] = answered.json()
    return body


async def test_a_split_test_assigns_subjects_records_feedback_and_is_promoted_by_a_person(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    first = await _train(client, owner)
    second = await _train(client, owner, runs=2, activate=False)

    started = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": second["id"], "min_feedback": 3},
        headers=owner.headers,
    )
    assert started.status_code == 201, started.text
    test = started.json()
    assert (test["status"], test["mode"], test["champion_version_id"]) == (
        "running",
        "split",
        first["id"],
    )
    again = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": second["id"]},
        headers=owner.headers,
    )
    assert again.status_code == 409, again.text

    answered: dict[str, list[dict[str, Any]]] = {}
    for index in range(12):
        subject = f"designer-{index}"
        twice = [await _recognize(client, owner, subject) for _ in range(2)]
        # The same subject, the same version, every time.
        assert twice[0]["model_version"] == twice[1]["model_version"]
        answered.setdefault(twice[0]["model_version"]["id"], []).extend(twice)
    assert set(answered) == {first["id"], second["id"]}
    # Feedback: every answer right.
    for recognitions in answered.values():
        for recognition in recognitions:
            said = await client.post(
                f"/api/v1/recognitions/{recognition['id']}/feedback",
                json={"correct": True},
                headers=owner.headers,
            )
            assert said.status_code == 201, said.text

    live = await client.get(f"/api/v1/model-experiments/{test['id']}", headers=owner.headers)
    figures = live.json()["figures"]
    assert figures["recognitions"] == 24
    assert {name: figures["variants"][name]["recognitions"] for name in (CHAMPION, CHALLENGER)} == {
        CHAMPION: len(answered[first["id"]]),
        CHALLENGER: len(answered[second["id"]]),
    }
    assert figures["variants"][CHALLENGER]["judged"] == len(answered[second["id"]])
    assert figures["variants"][CHALLENGER]["accuracy"] == 1.0
    assert figures["variants"][CHAMPION]["median_latency_ms"] > 0
    assert 0.0 <= figures["challenger_better"] <= 1.0

    # Every answer right on both sides: no clear winner yet, it goes on.
    judged = await client.post(
        f"/api/v1/model-experiments/{test['id']}/judge", headers=owner.headers
    )
    assert judged.status_code == 200, judged.text
    assert judged.json()["status"] == "running"

    promoted = await client.post(
        f"/api/v1/model-experiments/{test['id']}/promote", headers=owner.headers
    )
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["status"], promoted.json()["decision"]) == ("concluded", "promoted")
    versions = {
        version["id"]: version["active"]
        for version in (await client.get("/api/v1/models", headers=owner.headers)).json()["items"]
    }
    assert versions == {first["id"]: False, second["id"]: True}
    # After the test, everyone sees the new champion.
    assert (await _recognize(client, owner, "designer-0"))["model_version"]["id"] == second["id"]
    twice = await client.post(f"/api/v1/model-experiments/{test['id']}/stop", headers=owner.headers)
    assert twice.status_code == 409
    events = (await client.get("/api/v1/model-events", headers=owner.headers)).json()["items"]
    assert [event["kind"] for event in events] == [
        "experiment.concluded",
        "model.promoted",
        "experiment.started",
    ]
    assert events[1]["data"]["challenger_version"] == second["number"]
    audited = await client.get(
        "/api/v1/audit-events",
        params={"action": "model.experiment_concluded"},
        headers=owner.headers,
    )
    assert audited.status_code == 200, audited.text
    assert len(audited.json()["items"]) == 1


async def test_a_shadow_test_scores_unseen_and_stopping_it_keeps_the_champion(
    committed_runtime: Runtime, committed_client: AsyncClient, running_worker: None
) -> None:
    client = committed_client
    owner = await member(committed_runtime, client)
    await _catalog(client, owner)
    champion = await _train(client, owner)
    challenger = await _train(client, owner, runs=2, activate=False, backbones=["handcrafted"])
    started = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": challenger["id"], "mode": "shadow"},
        headers=owner.headers,
    )
    assert started.status_code == 201, started.text
    test = started.json()
    mosaic = jpeg(checks(300, cell=15, colour=(60, 90, 190), seed=5))
    for index, photo in enumerate((_brass_photo(), mosaic, _brass_photo(), mosaic)):
        recognition = await _recognize(client, owner, f"anyone-{index}", photo)
        # Only the champion answers; the challenger's answer is kept unseen.
        assert recognition["model_version"]["id"] == champion["id"]
        right = await client.post(
            f"/api/v1/recognitions/{recognition['id']}/feedback",
            json={"correct": True},
            headers=owner.headers,
        )
        assert right.status_code == 201, right.text
    live = (
        await client.get(f"/api/v1/model-experiments/{test['id']}", headers=owner.headers)
    ).json()
    figures = live["figures"]
    assert figures["recognitions"] == 4
    assert figures["variants"][CHAMPION]["accuracy"] == 1.0
    shadow = figures["variants"][CHALLENGER]
    assert (shadow["recognitions"], shadow["judged"]) == (4, 4)
    # Where the shadow agreed with a right answer it was right too.
    assert shadow["accuracy"] == shadow["agreement"]

    # Too few answers for a result: judging now leaves it running.
    judged = await client.post(
        f"/api/v1/model-experiments/{test['id']}/judge", headers=owner.headers
    )
    assert judged.json()["status"] == "running"
    stopped = await client.post(
        f"/api/v1/model-experiments/{test['id']}/stop", headers=owner.headers
    )
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["decision"]) == ("concluded", "kept")
    active = {
        version["id"]
        for version in (await client.get("/api/v1/models", headers=owner.headers)).json()["items"]
        if version["active"]
    }
    assert active == {champion["id"]}


async def test_starting_a_test_refuses_what_cannot_be_compared(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    missing = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": str(uuid.uuid4())},
        headers=owner.headers,
    )
    assert missing.status_code == 422, missing.text
    assert missing.json()["type"].endswith("experiment-refused")
    assert "active version" in missing.json()["detail"]
    bad = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": str(uuid.uuid4()), "challenger_share": 1.5},
        headers=owner.headers,
    )
    assert bad.status_code == 422
    unknown = await client.get(f"/api/v1/model-experiments/{uuid.uuid4()}", headers=owner.headers)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("experiment-not-found")


async def _two_versions(runtime: Runtime, owner: Member) -> tuple[ModelVersion, ModelVersion]:
    """Two ready versions, the first active."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        made = [
            ModelVersion(
                organization_id=owner.organization_id,
                number=number,
                status="ready",
                active=number == 1,
                options={},
            )
            for number in (1, 2)
        ]
        session.add_all(made)
    return made[0], made[1]


async def _observe(
    runtime: Runtime, owner: Member, experiment_id: str, right: dict[str, int], judged: int
) -> None:
    """`judged` answers of each variant, `right` of them right."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        for variant, count in right.items():
            for index in range(judged):
                session.add(
                    ExperimentObservation(
                        experiment_id=uuid.UUID(experiment_id),
                        recognition_id=uuid.uuid4(),
                        organization_id=owner.organization_id,
                        variant=variant,
                        label="Oak",
                        confidence=0.9,
                        unknown=False,
                        latency_ms=25.0,
                        correct=index < count,
                    )
                )


@pytest.mark.parametrize("auto_promote", [True, False])
async def test_a_clear_win_is_promoted_by_the_organizations_rule_or_waits_for_a_person(
    runtime: Runtime, client: AsyncClient, auto_promote: bool
) -> None:
    owner = await member(runtime, client)
    champion, challenger = await _two_versions(runtime, owner)
    started = await client.post(
        "/api/v1/model-experiments",
        json={"challenger_version_id": str(challenger.id), "auto_promote": auto_promote},
        headers=owner.headers,
    )
    assert started.status_code == 201, started.text
    test = started.json()
    await _observe(runtime, owner, test["id"], {CHAMPION: 300, CHALLENGER: 360}, 400)

    for _ in range(2):
        judged = await client.post(
            f"/api/v1/model-experiments/{test['id']}/judge", headers=owner.headers
        )
        assert judged.status_code == 200, judged.text
    result = judged.json()
    assert result["figures"]["challenger_better"] > 0.99
    listed = (await client.get("/api/v1/models", headers=owner.headers)).json()["items"]
    active = {version["id"] for version in listed if version["active"]}
    kinds = [
        event["kind"]
        for event in (await client.get("/api/v1/model-events", headers=owner.headers)).json()[
            "items"
        ]
    ]
    if auto_promote:
        assert (result["status"], result["decision"]) == ("concluded", "promoted")
        assert active == {str(challenger.id)}
        assert kinds == ["experiment.concluded", "model.promoted", "experiment.started"]
    else:
        # The organization promotes by hand: told once, the test goes on.
        assert (result["status"], result["figures"]["recommendation"]) == ("running", "promote")
        assert active == {str(champion.id)}
        assert kinds == ["experiment.challenger_won", "experiment.started"]
