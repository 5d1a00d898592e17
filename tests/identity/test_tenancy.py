"""Who may call what, and the walls between organizations.

Two generic tests walk every route of the app, so new routes are covered without a word:
each must declare who may call it, and no member of one organization may reach another
organization's resources by id (the answer is 404, never 403, never the resource).
"""

from __future__ import annotations

import io
import os
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from PIL import Image
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from kai.app import api_routes, create_app
from kai.catalog.models import Category, Material, MaterialImage, MaterialVersion
from kai.config import Settings
from kai.identity.models import ApiKey, AuthSession, Invitation, Role, Team, TeamMember
from kai.identity.permissions import Permission
from kai.kit.crypto import token_digest
from kai.kit.db import act_for
from kai.ml.models import ImageModel, ModelExperiment, ModelVersion, ReviewItem
from kai.recognition.models import Project, ProjectMaterial, Recognition, RecognitionBatch
from kai.runtime import Runtime
from tests.identity.factories import Member, add_member, create_user, member
from tests.jobs import sample_tasks

pytestmark = pytest.mark.database

# Routes anyone may call. Adding one here is a decision, reviewed as such.
PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/verify-email/resend"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("GET", "/api/v1/auth/sso/{organization_slug}/login"),
    ("POST", "/api/v1/auth/sso/{organization_slug}/login"),
    ("GET", "/api/v1/auth/sso/{organization_slug}/callback"),
    ("POST", "/api/v1/auth/sso/confirm"),
    # The pages emailed links open: each does what its API route above does.
    *(
        (method, path)
        for path in ("/verify-email", "/reset-password", "/invitations/accept", "/sso/confirm")
        for method in ("GET", "POST")
    ),
    # The web app's files and routes (or, without a build, the page saying so).
    ("GET", "/"),
    ("GET", "/{path}"),
}

# Bodies valid enough to get past validation to the lookup, by route; `{}` otherwise.
BODIES: dict[tuple[str, str], object] = {
    ("PATCH", "/api/v1/members/{user_id}"): {"role": "member"},
    ("POST", "/api/v1/recognitions/{recognition_id}/feedback"): {"correct": True},
}


def _photo() -> dict[str, tuple[str, bytes, str]]:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), tuple(os.urandom(3))).save(out, "JPEG")
    return {"file": ("tile.jpg", out.getvalue(), "image/jpeg")}


# Routes that take a file rather than JSON.
UPLOADS = {("POST", "/api/v1/materials/{material_id}/images"): _photo}


def _routes() -> list[tuple[str, str, tuple[str, str | None] | None]]:
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    return [
        (method, route.path, route.access)
        for route in api_routes(app)
        for method in sorted(route.methods - {"HEAD"})
    ]


def test_every_route_declares_who_may_call_it() -> None:
    undeclared = [f"{m} {p}" for m, p, access in _routes() if access is None]
    assert undeclared == [], "routes without require(...), authenticated() or public()"
    public = {(m, p) for m, p, access in _routes() if access is not None and access[0] == "public"}
    assert public <= PUBLIC_ROUTES, f"public routes not on the list: {public - PUBLIC_ROUTES}"


def test_the_openapi_document_says_what_each_route_needs() -> None:
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    operation = app.openapi()["paths"]["/api/v1/members/{user_id}"]["patch"]
    assert operation["security"] == [{"bearer": []}]
    assert operation["x-kai-permission"] == "members:manage"
    assert app.openapi()["paths"]["/api/v1/auth/login"]["post"]["security"] == []


def test_every_permission_a_role_or_key_may_hold_is_needed_by_some_route() -> None:
    # A permission no route asks for would be offered, granted and shown, and do nothing.
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    document = app.openapi()
    needed = {
        operation.get("x-kai-permission")
        for item in document["paths"].values()
        for operation in item.values()
    }
    offered = set(document["components"]["schemas"]["Permission"]["enum"])
    assert offered == {permission.value for permission in Permission}
    assert offered - needed == set()


async def _resources_of(runtime: Runtime, session: AsyncSession, owner: Member) -> dict[str, str]:
    """One resource of each kind in the owner's organization, by path parameter name."""
    organization_id = owner.organization_id
    colleague = await create_user(runtime)
    await add_member(runtime, owner.organization, colleague, "editor")  # type: ignore[arg-type]
    async with runtime.session_factory.begin() as work:
        await act_for(work, organization_id=organization_id)
        suffix = uuid.uuid4().hex[:8]
        team = Team(organization_id=organization_id, name=f"Showroom {suffix}")
        role = Role(
            organization_id=organization_id, key=f"buyer-{suffix}", name="Buyer", permissions=[]
        )
        key = ApiKey(
            organization_id=organization_id,
            name="ERP",
            prefix=uuid.uuid4().hex[:12],
            secret_digest=token_digest("x" * 32),
            permissions=["materials:read"],
        )
        invitation = Invitation(
            organization_id=organization_id,
            email="guest@tiles.example",
            role="member",
            token_digest=token_digest(uuid.uuid4().hex),
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        category = Category(organization_id=organization_id, name=f"Stone {suffix}")
        # Another login of the owner's (ending the calling one would end the test's too).
        elsewhere = AuthSession(
            user_id=owner.user.id,
            organization_id=organization_id,
            methods=["pwd"],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        work.add_all([team, role, key, invitation, category, elsewhere])
        await work.flush()
        work.add(TeamMember(team_id=team.id, user_id=colleague.id, organization_id=organization_id))
        material = Material(
            organization_id=organization_id,
            category_id=category.id,
            name="Carrara",
            code=f"CAR-{suffix}",
        )
        work.add(material)
        await work.flush()
        # Its first version, for the routes that name one (restoring it changes nothing).
        work.add(
            MaterialVersion(
                organization_id=organization_id,
                material_id=material.id,
                version=material.version,
                action="created",
                changes={},
                actor_type="user",
            )
        )
        image = MaterialImage(
            organization_id=organization_id,
            material_id=material.id,
            sha256=uuid.uuid4().hex * 2,
            format="jpeg",
            content_type="image/jpeg",
            width=1,
            height=1,
            size_bytes=1,
            original_key=f"{organization_id}/materials/images/original/{suffix}.jpg",
        )
        work.add(image)
        # Called again after each route: each call records a version of its own number.
        number = uuid.uuid4().int % 1_000_000_000
        version = ModelVersion(organization_id=organization_id, number=number, status="ready")
        work.add(version)
        await work.flush()
        project = Project(organization_id=organization_id, name=f"Villa {suffix}")
        work.add(project)
        await work.flush()
        photo_key = f"{organization_id}/users/uploads/recognitions/{suffix}.jpg"
        await runtime.storage.put(photo_key, _photo()["file"][1], content_type="image/jpeg")
        recognition = Recognition(
            organization_id=organization_id,
            model_version_id=version.id,
            project_id=project.id,
            image_key=photo_key,
            sha256=uuid.uuid4().hex * 2,
            content_type="image/jpeg",
            width=64,
            height=48,
            label="Marble",
            confidence=0.9,
            unknown=False,
            predictions=[{"label": "Marble", "category_id": None, "confidence": 0.9}],
            similar=[],
            timings={},
        )
        work.add(recognition)
        await work.flush()
        # It waits in the review queue (skipping it takes it out).
        work.add(
            ReviewItem(
                recognition_id=recognition.id,
                organization_id=organization_id,
                image_key=photo_key,
                features_of="efficientnet|plain",
                reason="unknown",
            )
        )
        work.add(
            ProjectMaterial(
                project_id=project.id, material_id=material.id, organization_id=organization_id
            )
        )
        image_model = ImageModel(
            organization_id=organization_id,
            name=f"net-{suffix}",
            sha256="0" * 64,
            size_bytes=1,
            storage_key=f"{organization_id}/models/backbones/net-{suffix}.onnx",
            spec={"input_side": 32},
            dimension=4,
        )
        work.add(image_model)
        batch = RecognitionBatch(organization_id=organization_id, total=0)
        work.add(batch)
        # An A/B test that ended (one running at a time, and this is called again and again).
        challenger = ModelVersion(
            organization_id=organization_id, number=number + 1, status="ready"
        )
        work.add(challenger)
        await work.flush()
        experiment = ModelExperiment(
            organization_id=organization_id,
            champion_version_id=version.id,
            challenger_version_id=challenger.id,
            mode="split",
            status="concluded",
            decision="kept",
        )
        work.add(experiment)
        job = await sample_tasks.record.enqueue(work, organization_id=organization_id)
        return {
            "team_id": str(team.id),
            "role_id": str(role.id),
            "key_id": str(key.id),
            "session_id": str(elsewhere.id),
            "invitation_id": str(invitation.id),
            "user_id": str(colleague.id),
            "job_id": str(job.id),
            "category_id": str(category.id),
            "material_id": str(material.id),
            "version": str(material.version),
            "image_id": str(image.id),
            "version_id": str(version.id),
            "recognition_id": str(recognition.id),
            "batch_id": str(batch.id),
            "project_id": str(project.id),
            "name": f"custom:net-{suffix}",
            "variant": "thumbnail",
            "experiment_id": str(experiment.id),
        }


async def test_no_route_reaches_another_organizations_resources(
    runtime: Runtime, client: AsyncClient, session: AsyncSession
) -> None:
    alice = await member(runtime, client)
    bob = await member(runtime, client)  # owner of another organization: every permission
    resources = await _resources_of(runtime, session, alice)

    checked = 0
    for method, path, access in _routes():
        names = re.findall(r"{(\w+)}", path)
        if not names or access is None or access[0] == "public":
            continue
        missing = [name for name in names if name not in resources]
        assert not missing, f"{method} {path}: add a resource for {missing} to _resources_of"
        url = path.format(**resources)
        body = BODIES.get((method, path), {} if method in {"POST", "PUT", "PATCH"} else None)
        upload = UPLOADS.get((method, path))
        sent = {"files": upload()} if upload else {"json": body}

        # Another organization's owner, with every permission, gets 404 and learns nothing.
        other = await client.request(method, url, headers=bob.headers, **sent)
        assert other.status_code == 404, f"{method} {path} answered {other.status_code}"
        assert other.headers["content-type"] == "application/problem+json"
        for value in resources.values():
            assert value not in other.json().get("detail", "") or value in url
        # The resource exists: its own organization reaches it (so the 404 means a wall).
        sent = {"files": upload()} if upload else {"json": body}
        own = await client.request(method, url, headers=alice.headers, **sent)
        assert own.status_code < 400 or own.status_code == 409, f"{method} {url}: {own.text}"
        checked += 1
        # Each route may have changed what it touched (deleted, revoked): start afresh.
        resources = await _resources_of(runtime, session, alice)
    assert checked >= 15


async def test_row_level_security_hides_rows_a_query_forgot_to_filter(
    runtime: Runtime, client: AsyncClient
) -> None:
    alice = await member(runtime, client)
    bob = await member(runtime, client)
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=alice.organization_id)
        session.add(Team(organization_id=alice.organization_id, name="Alice's team"))
        await act_for(session, organization_id=bob.organization_id)
        session.add(Team(organization_id=bob.organization_id, name="Bob's team"))

    async with runtime.session_factory.begin() as session:
        # No WHERE on the organization: the database adds it.
        await act_for(session, organization_id=bob.organization_id)
        names = set((await session.scalars(select(Team.name))).all())
        assert names == {"Bob's team"}
        assert (await session.execute(text("SELECT count(*) FROM teams"))).scalar_one() == 1
    async with runtime.session_factory.begin() as session:
        # Acting for nobody, the application's role sees no tenant rows at all. (Said out
        # loud: the test's transactions nest, so the last scope would otherwise linger.)
        await act_for(session, organization_id=None)
        assert (await session.scalars(select(Team))).all() == []

    # Nor can it write into another organization.
    async def plant() -> None:
        async with runtime.session_factory.begin() as session:
            await act_for(session, organization_id=bob.organization_id)
            session.add(Team(organization_id=alice.organization_id, name="Planted"))
            await session.flush()

    with pytest.raises(DBAPIError, match="row-level security"):
        await plant()


async def test_the_application_role_cannot_step_around_the_walls(
    runtime: Runtime, session: AsyncSession
) -> None:
    role = await session.execute(
        text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
    )
    name, superuser, bypass = role.one()
    assert (name, superuser, bypass) == ("kai_app", False, False)
    owners = await session.execute(
        text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    )
    assert "kai_app" not in set(owners.scalars())
