"""Migrations go up and down cleanly, and agree with the models."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from kai.kit.db import Base, libpq_url, sqlalchemy_url
from kai.migrations import runner
from tests.conftest import fresh_database

pytestmark = pytest.mark.database


def _objects(url: str) -> set[str]:
    """Tables, functions, types and extensions a migration could leave behind."""
    with psycopg.connect(libpq_url(url)) as connection:
        rows = connection.execute(
            """
            SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public'
            UNION ALL
            SELECT 'function ' || proname FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
            UNION ALL
            SELECT 'type ' || typname FROM pg_type t
              JOIN pg_namespace n ON n.oid = t.typnamespace
              LEFT JOIN pg_class c ON c.oid = t.typrelid
             WHERE n.nspname = 'public' AND (t.typtype = 'e' OR c.relkind = 'c')
            UNION ALL
            SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
            """
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def empty_database(server_url: str, worker_name: str) -> object:
    with fresh_database(server_url, f"kai_migrations_{worker_name}") as url:
        yield url


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    url = empty_database
    assert _objects(url) == set()

    runner.upgrade(url)
    upgraded = _objects(url)
    assert {"table jobs", "table procrastinate_jobs", "extension vector", "extension pg_trgm"} <= (
        upgraded
    )
    assert runner.status(url).up_to_date

    runner.downgrade(url, "base")
    assert _objects(url) - {"table alembic_version"} == set()
    assert runner.status(url).current == ()

    runner.upgrade(url)
    assert _objects(url) == upgraded


def test_the_models_match_the_migrated_schema(empty_database: str) -> None:
    # A database of its own: other tests add tables of theirs to the shared one.
    runner.upgrade(empty_database)
    engine = create_engine(sqlalchemy_url(empty_database), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            # procrastinate's tables belong to procrastinate, not to our models.
            if not _is_procrastinate(diff)
        ]
    engine.dispose()
    assert differences == []


def _is_procrastinate(diff: object) -> bool:
    target = diff[0] if isinstance(diff, list) else diff
    name = getattr(target[1], "name", "") if isinstance(target, tuple) else ""
    table = (
        getattr(getattr(target[1], "table", None), "name", "") if isinstance(target, tuple) else ""
    )
    return str(name).startswith("procrastinate") or str(table).startswith("procrastinate")


def test_single_sign_on_links_of_before_stay_with_the_organizations_they_joined(
    empty_database: str,
) -> None:
    # Before 0016 a link was found by issuer and subject platform-wide: any organization naming
    # the issuer signed its person in. Each becomes one link per organization whose provider
    # names the issuer and has the person as a member; who configured a provider comes from
    # the audit log.
    url = empty_database
    runner.upgrade(url, "0015")
    issuer = "https://idp.shared.example"
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:

        def row(sql: str, *params: object) -> str:
            found = connection.execute(sql, params).fetchone()
            assert found is not None
            return str(found[0])

        def organization(slug: str) -> str:
            return row(
                "INSERT INTO organizations (id, name, slug) VALUES (gen_random_uuid(), %s, %s)"
                " RETURNING id",
                slug,
                slug,
            )

        def user(email: str) -> str:
            return row(
                "INSERT INTO users (id, email) VALUES (gen_random_uuid(), %s) RETURNING id", email
            )

        joined, elsewhere, unrelated = (organization(slug) for slug in ("a", "b", "c"))
        owner, member, stray = (user(f"{name}@x.example") for name in ("o", "m", "s"))
        for organization_id, user_id, role in (
            (joined, owner, "owner"),
            (joined, member, "editor"),
        ):
            connection.execute(
                "INSERT INTO memberships (id, organization_id, user_id, role)"
                " VALUES (gen_random_uuid(), %s, %s, %s)",
                (organization_id, user_id, role),
            )
        for organization_id, provider_issuer in (
            (joined, issuer),
            (elsewhere, issuer),
            (unrelated, "https://idp.other.example"),
        ):
            connection.execute(
                "INSERT INTO sso_providers (id, organization_id, issuer, client_id)"
                " VALUES (gen_random_uuid(), %s, %s, 'kai')",
                (organization_id, provider_issuer),
            )
        for user_id, subject in ((member, "member-sub"), (stray, "stray-sub")):
            connection.execute(
                "INSERT INTO user_identities (id, user_id, issuer, subject)"
                " VALUES (gen_random_uuid(), %s, %s, %s)",
                (user_id, issuer, subject),
            )
        # The audit log is written only for the organization acted for.
        connection.execute("SELECT set_config('kai.organization_id', %s, false)", (joined,))
        connection.execute(
            "SELECT kai_audit_append(%s, 'user', %s, 'sso.provider.configured', 'success',"
            " 'sso_provider', NULL, NULL, NULL, NULL, '{}'::jsonb)",
            (joined, owner),
        )

    runner.upgrade(url)

    with psycopg.connect(libpq_url(url)) as connection:
        links = connection.execute(
            "SELECT user_id::text, organization_id::text, subject FROM user_identities"
        ).fetchall()
        configured = dict(
            connection.execute(
                "SELECT organization_id::text, configured_by::text FROM sso_providers"
            ).fetchall()
        )
    assert links == [(member, joined, "member-sub")]
    assert configured == {joined: owner, elsewhere: None, unrelated: None}


def test_photos_labelled_by_feedback_that_contradicted_itself_are_no_longer_trained_on(
    empty_database: str,
) -> None:
    # Before 0018 "right" could name another category than KAI's answer, and "wrong" the
    # answer itself; the photo was labelled with what was named either way.
    url = empty_database
    runner.upgrade(url, "0017")
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:

        def row(sql: str, *params: object) -> str:
            found = connection.execute(sql, params).fetchone()
            assert found is not None
            return str(found[0])

        org = row(
            "INSERT INTO organizations (id, name, slug) VALUES (gen_random_uuid(), 'a', 'a')"
            " RETURNING id"
        )

        def category(name: str, *path: str) -> str:
            return row(
                "INSERT INTO categories (id, organization_id, name, path)"
                " VALUES (gen_random_uuid(), %s, %s, %s::uuid[]) RETURNING id",
                org,
                name,
                list(path),
            )

        def material(name: str, code: str, category_id: str) -> str:
            return row(
                "INSERT INTO materials (id, organization_id, name, code, category_id)"
                " VALUES (gen_random_uuid(), %s, %s, %s, %s) RETURNING id",
                org,
                name,
                code,
                category_id,
            )

        def version(number: int, label_by: str) -> str:
            return row(
                "INSERT INTO model_versions (id, organization_id, number, labelling)"
                " VALUES (gen_random_uuid(), %s, %s, jsonb_build_object('label_by', %s::text))"
                " RETURNING id",
                org,
                number,
                label_by,
            )

        tiles = category("Tiles")
        porcelain = category("Porcelain", tiles)
        stone = category("Stone")
        grey = material("Grey", "G-1", porcelain)
        white = material("White", "W-1", porcelain)
        by_category, by_material = version(1, "category"), version(2, "material")

        def said(
            case: str, answer: tuple[str, str, str], correct: bool, named: dict[str, str]
        ) -> None:
            label, category_id, version_id = answer
            recognition = row(
                "INSERT INTO recognitions (id, organization_id, model_version_id, image_key,"
                " sha256, content_type, width, height, label, category_id, unknown,"
                " predictions, \"similar\", timings) VALUES (gen_random_uuid(), %s, %s, %s, '0',"
                " 'image/png', 1, 1, %s, %s, false, '[]', '[]', '{}') RETURNING id",
                org,
                version_id,
                case,
                label,
                category_id,
            )
            named_ids = (named.get("category"), named.get("material"))
            connection.execute(
                "INSERT INTO recognition_feedback (organization_id, recognition_id, correct,"
                " category_id, material_id) VALUES (%s, %s, %s, %s, %s)",
                (org, recognition, correct, *named_ids),
            )
            connection.execute(
                "INSERT INTO labeled_photos (id, organization_id, recognition_id, image_key,"
                " category_id, material_id) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s)",
                (org, recognition, case, *named_ids),
            )

        tiles_answer = ("Tiles", tiles, by_category)
        grey_answer = ("Grey (G-1)", porcelain, by_material)
        said("right, another category", tiles_answer, True, {"category": stone})
        said("right, more precisely", tiles_answer, True, {"category": porcelain})
        said("wrong, the answer itself", tiles_answer, False, {"category": tiles})
        said("wrong, another category", tiles_answer, False, {"category": stone})
        said("right, another material", grey_answer, True, {"material": white})
        said("wrong, another material", grey_answer, False, {"material": white})
        said("right, the material", grey_answer, True, {"material": grey})

    runner.upgrade(url)

    with psycopg.connect(libpq_url(url)) as connection:
        kept = {row[0] for row in connection.execute("SELECT image_key FROM labeled_photos")}
        feedback = connection.execute("SELECT count(*) FROM recognition_feedback").fetchone()
    assert kept == {
        "right, more precisely",
        "wrong, another category",
        "wrong, another material",
        "right, the material",
    }
    assert feedback == (7,)


def test_permissions_no_route_needs_are_taken_from_stored_roles_and_keys(
    empty_database: str,
) -> None:
    url = empty_database
    runner.upgrade(url, "0018")
    held = ["materials:read", "webhooks:manage", "analytics:read"]
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO organizations (id, name, slug) VALUES (gen_random_uuid(), 'a', 'a')"
        )
        connection.execute(
            "INSERT INTO roles (id, organization_id, key, name, permissions)"
            " SELECT gen_random_uuid(), id, 'watcher', 'Watcher', %s FROM organizations",
            (held,),
        )
        connection.execute(
            "INSERT INTO api_keys (id, organization_id, name, prefix, secret_digest, permissions)"
            " SELECT gen_random_uuid(), id, 'k', 'kai_x', '\\x00', %s FROM organizations",
            (held,),
        )

    runner.upgrade(url)

    with psycopg.connect(libpq_url(url)) as connection:
        for table in ("roles", "api_keys"):
            found = connection.execute(f"SELECT permissions FROM {table}").fetchall()
            assert found == [(["materials:read"],)], table
