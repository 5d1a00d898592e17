"""Property-based HTTP tests generated from the app's own OpenAPI document (schemathesis).

An organization's owner calls the app in-process, as an outside fuzzer holding an owner's token
would: first every documented operation on its own, with generated valid and invalid input
(the upload routes with generated photos, zips, catalog files and ONNX models), each create
that succeeds sent a second time; then workflows that create resources and use them, following
the links schemathesis infers from the document. A test fails on any 5xx, any status the
document does not declare, and any response whose schema, content type or headers differ from
the declared ones; in workflows, also on a resource missing right after its creation or
present after its deletion.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.app import create_app
from kai.config import Settings
from kai.identity.actor import Origin
from kai.identity.sessions import open_session
from kai.runtime import Runtime
from tests.conftest import empty_committed_tables
from tests.identity.factories import create_organization, create_user
from tests.upload_strategies import UPLOADS

pytestmark = pytest.mark.database

# Examples per operation and mode; workflows: scenarios of up to so many steps, in rounds (see
# the workflow test) until about so many steps ran. Together about two minutes on two cores.
EXAMPLES = 30
WORKFLOW_SCENARIOS = 40
WORKFLOW_STEP_COUNT = 8
WORKFLOW_ROUNDS = 4
WORKFLOW_STEPS = 500
# Operations on the caller's own session, account or organization (log out, require MFA of
# every member, hand the organization over...) change what every later call may do: each gets
# an owner of its own, and workflows leave them out.
OWN_ACCOUNT = re.compile(r"^/api/v1/(auth|me|organization|members)(/|$)")
# Not checked: that schema-valid input is accepted. An owner's valid-looking input is rightly
# refused by rules no schema states: an id that names nothing, a made-up cursor or emailed
# token, a password too easy to guess, a NUL character the database cannot store, a property
# no category defines, a file that is not what its field wants, a date in the past.
UNCHECKED = [positive_data_acceptance]
# A deleted material keeps its history, on purpose: who deleted it, and what `/restore`
# brings back. A revoked API key stays readable with its `revoked_at` (DELETE revokes it):
# its owners see which key stopped working, and when. Everything else under a deleted
# resource is gone with it.
KEPT_AFTER_DELETION = {
    "/api/v1/materials/{material_id}/versions",
    "/api/v1/api-keys/{key_id}",
}


def deleted_resources_are_gone(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    if case.operation.path in KEPT_AFTER_DELETION:
        return None
    return use_after_free(ctx, response, case)


# Every workflow step: conformance, and a resource just created can be read, one just deleted
# cannot, one that needs a credential refuses a request without one.
WORKFLOW_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ensure_resource_availability,
    deleted_resources_are_gone,
    ignored_auth,
]

Headers = dict[str, str]


def _documented_operations() -> list[tuple[str, str, GenerationMode]]:
    # Listing routes needs no database: the document is built from the routes alone.
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    paths: dict[str, dict[str, dict[str, object]]] = app.openapi()["paths"]
    cases = []
    for path, item in paths.items():
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            # Invalid input needs some input: an operation without any has no negative case.
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.fixture(scope="module")
def fuzz_settings(settings: Settings) -> Settings:
    # Rate limits have tests of their own; here they would turn most calls into 429s.
    limits = settings.rate_limits.model_copy(update={"enabled": False})
    return settings.model_copy(update={"rate_limits": limits})


@pytest.fixture(scope="module")
def fuzz_app(fuzz_settings: Settings, database_url: str) -> FastAPI:
    # The app builds its own runtime inside schemathesis' event loop (its lifespan), and
    # commits what the calls write: the module's teardown empties the tables.
    return create_app(fuzz_settings, database_url=database_url)


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        # Real files in the file fields (generated ones are random text), where the generated
        # value is of a file's type: one made invalid on purpose stays as it is.
        operation = context.operation
        uploads = UPLOADS.get((operation.method.upper(), operation.path))
        if uploads is None or not isinstance(body, dict):
            return st.just(body)
        fields = {
            name: strategy
            for name, strategy in uploads.items()
            if _is_file(body.get(name))
            or (isinstance(body.get(name), list) and all(map(_is_file, body[name])))
        }
        return st.fixed_dictionaries(fields).map(lambda files: {**body, **files})

    return schema


def _is_file(value: object) -> bool:
    return isinstance(value, str | bytes)


NewOwner = Callable[[], Awaitable[Headers]]


@pytest.fixture(scope="module")
async def new_owner(
    fuzz_settings: Settings, database_url: str, owner_engine: AsyncEngine
) -> AsyncIterator[NewOwner]:
    """Makes the owner of a new organization, and gives the headers of their access token."""
    runtime = Runtime.create(fuzz_settings, database_url)

    async def make() -> Headers:
        user = await create_user(runtime)
        organization = await create_organization(runtime, owner=user)
        async with runtime.session_factory.begin() as session:
            tokens = await open_session(
                session,
                runtime,
                user=user,
                organization=organization,
                methods=["pwd"],
                origin=Origin(),
            )
        return {"Authorization": f"Bearer {tokens.access_token}"}

    try:
        yield make
    finally:
        await runtime.close()
        await empty_committed_tables(owner_engine)


@pytest.fixture(scope="module")
async def owner(
    new_owner: NewOwner, fuzz_settings: Settings, database_url: str
) -> AsyncIterator[Headers]:
    """An owner whose organization has a little of everything, for lists to list and links to
    follow from: a category, materials (one with a photo), a project, a team and a role."""
    headers = await new_owner()
    runtime = Runtime.create(fuzz_settings, database_url)
    app = create_app(fuzz_settings, runtime=runtime)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://kai.test", headers=headers
        ) as client:
            await _seed(client)
        yield headers
    finally:
        await runtime.close()


async def _seed(client: AsyncClient) -> None:
    async def created(path: str, **sent: Any) -> dict[str, Any]:
        response = await client.post(path, **sent)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    category = await created("/api/v1/categories", json={"name": "Stone"})
    materials = [
        await created(
            "/api/v1/materials",
            json={
                "name": f"Marble {number}",
                "code": f"ST-{number}",
                "category_id": category["id"],
            },
        )
        for number in (1, 2)
    ]
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 170, 160)).save(photo, format="PNG")
    await created(
        f"/api/v1/materials/{materials[0]['id']}/images",
        files={"file": ("marble.png", photo.getvalue(), "image/png")},
    )
    await created("/api/v1/projects", json={"name": "Lobby"})
    await created("/api/v1/teams", json={"name": "Showroom"})
    await created(
        "/api/v1/roles",
        json={"key": "buyer", "name": "Buyer", "permissions": ["materials:read"]},
    )


def _unchecked(case: schemathesis.Case) -> list[Any]:
    negative = {
        location
        for location, component in (case.meta.components.items() if case.meta else ())
        if component.mode is GenerationMode.NEGATIVE
    }
    in_text = negative and negative <= {ParameterLocation.QUERY, ParameterLocation.HEADER}
    if in_text or (case.method.upper(), case.path) in UPLOADS:
        # Nor that invalid input there is refused: unknown query parameters and headers are
        # ignored (as by most APIs), and query values and form fields travel as text or files,
        # so most values made invalid arrive as valid ones (a null file is a file saying
        # "null", a number where text is wanted is text again).
        return [*UNCHECKED, negative_data_rejection]
    return UNCHECKED


def _credentials(case: schemathesis.Case, owner: Headers) -> Headers | None:
    """The owner's credentials, unless the case means to send bad ones of its own."""
    meta = case.meta
    headers = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    sends_bad_ones = "Authorization" in (case.headers or {})
    if headers is not None and headers.mode is GenerationMode.NEGATIVE and sends_bad_ones:
        return None
    return owner


# Hypothesis warns when the `random` module's state moves while it draws a case, taking it
# for a strategy's doing. Here the app runs beside it in another thread, and psycopg's pool
# draws from `random` for each connection it opens (a jittered lifetime): not the strategy.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize(("method", "path", "mode"), _documented_operations())
async def test_every_operation_answers_as_documented(
    api_schema: schemathesis.BaseSchema,
    owner: Headers,
    new_owner: NewOwner,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    caller = await new_owner() if OWN_ACCOUNT.match(path) else owner

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        headers = _credentials(case, caller)
        unchecked = _unchecked(case)
        response = case.call_and_validate(headers=headers, excluded_checks=unchecked)
        if case.method.upper() == "POST" and response.status_code == 201:
            # The same create again answers as documented too: a name taken is a 409 the
            # document declares, never a 500 (whatever the script, and however it is cased).
            case.call_and_validate(headers=headers, excluded_checks=unchecked)

    # Schemathesis calls the app on its own event loop, in another thread.
    await asyncio.to_thread(answers_as_documented)


def test_workflows_of_created_resources_answer_as_documented(
    api_schema: schemathesis.BaseSchema, owner: Headers
) -> None:
    # Links between operations (POST /teams -> GET, PATCH, DELETE /teams/{team_id}, GET
    # /materials -> PATCH /materials/{material_id}, ...) are inferred by schemathesis from the
    # document's paths and schemas. Workflows send valid input: invalid input had its turn
    # above, and would end most workflows at their first step.
    api_schema.config.phases.stateful.generation.update(modes=[GenerationMode.POSITIVE])
    workflow = api_schema.exclude(path_regex=OWN_ACCOUNT.pattern).as_state_machine()
    steps = 0
    failures: list[str] = []

    class OwnerWorkflow(workflow):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": owner}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            nonlocal steps
            steps += 1
            try:
                case.validate_response(
                    response,
                    checks=WORKFLOW_CHECKS,
                    headers=owner,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except FailureGroup as exc:
                failures.append(f"{exc}\n{case.as_curl_command()}")
                raise

    for _ in range(WORKFLOW_ROUNDS):
        try:
            OwnerWorkflow.run(
                settings=hypothesis_settings(
                    max_examples=WORKFLOW_SCENARIOS,
                    stateful_step_count=WORKFLOW_STEP_COUNT,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    derandomize=True,
                    database=None,
                    # Shrinking would replay steps against a server whose state has moved on.
                    phases=[Phase.explicit, Phase.generate],
                )
            )
        except Flaky:
            # Hypothesis stops where the same draws meet another state of the server than
            # before (a resource it listed has been deleted since): the next round goes on.
            pass
        except FailureGroup:
            break
        if steps >= WORKFLOW_STEPS:
            break
    assert not failures, "\n\n".join(failures)
    # Still the owner at the end: fuzzing that had locked itself out would have tested nothing.
    assert api_schema["/api/v1/me"]["GET"].Case().call(headers=owner).status_code == 200
