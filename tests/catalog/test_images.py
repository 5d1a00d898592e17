"""Images of materials: checked by content, stored once, derivatives without metadata."""

from __future__ import annotations

import io
import zlib
from typing import Any

import pytest
from httpx import AsyncClient
from PIL import Image
from sqlalchemy import func, select

from kai.catalog import images
from kai.catalog.models import MaterialImage
from kai.kit.db import act_for
from kai.runtime import Runtime
from tests.catalog.factories import create_material
from tests.identity.factories import Member, member
from tests.kit.deletions import run_queued_deletions
from tests.pages import every_page

pytestmark = pytest.mark.database

GPS_IFD = 0x8825


def photo(width: int = 1600, height: int = 1200, *, colour: tuple[int, int, int] = (180, 170, 160),
          gps: bool = False) -> bytes:  # fmt: skip
    """A JPEG as a phone writes it; with `gps`, EXIF that says where it was taken."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(0, width, 40):  # some texture, so the JPEG is not trivially small
        image.paste((colour[0] // 2, colour[1] // 2, colour[2] // 2), (x, 0, x + 8, height))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (43.0, 52.0, 30.0), 3: "E", 4: (10.0, 6.0, 15.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels, about 100 KB compressed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


async def _upload(
    client: AsyncClient, owner: Member, material_id: str, data: bytes, name: str = "tile.jpg",
    content_type: str = "image/jpeg",
) -> Any:  # fmt: skip
    return await client.post(
        f"/api/v1/materials/{material_id}/images",
        files={"file": (name, data, content_type)},
        headers=owner.headers,
    )


async def _stored_objects(runtime: Runtime, owner: Member) -> list[str]:
    return [obj.key async for obj in runtime.storage.list(f"{owner.organization_id}/")]


async def _derive(runtime: Runtime, owner: Member, image_id: str) -> None:
    """What the image job does, called directly."""
    import uuid

    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        await images.make_derivatives(
            session,
            runtime.storage,
            organization_id=owner.organization_id,
            image_id=uuid.UUID(image_id),
        )


async def test_an_uploaded_photo_gets_derivatives_without_any_metadata(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    uploaded = await _upload(client, owner, material["id"], photo(gps=True), name="IMG_0001.JPG")
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    assert (image["status"], image["format"], image["width"], image["height"]) == (
        "processing", "jpeg", 1600, 1200,
    )  # fmt: skip
    assert image["is_primary"] is True
    not_yet = await client.get(image["urls"]["thumbnail"], headers=owner.headers)
    assert not_yet.status_code == 409

    await _derive(runtime, owner, image["id"])
    for variant, size in (("processed", (1024, 768)), ("thumbnail", (256, 192))):
        response = await client.get(image["urls"][variant], headers=owner.headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert "immutable" in response.headers["cache-control"]
        served = Image.open(io.BytesIO(response.content))
        assert served.size == size
        assert len(served.getexif()) == 0
        assert not {"exif", "xmp", "icc_profile"} & set(served.info)
        assert b"PhoneMaker" not in response.content
        again = await client.get(
            image["urls"][variant],
            headers={**owner.headers, "If-None-Match": response.headers["etag"]},
        )
        assert again.status_code == 304

    listed = await client.get(f"/api/v1/materials/{material['id']}/images", headers=owner.headers)
    assert [i["status"] for i in listed.json()["items"]] == ["ready"]


@pytest.mark.parametrize(
    ("name", "data", "status", "kind"),
    [
        ("catalog.jpg", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", 422, "image-rejected"),
        ("truncated.jpg", photo()[:4000], 422, "image-rejected"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', 422,
         "image-rejected"),
        ("empty.jpg", b"", 422, "image-rejected"),
        ("bomb.png", png_bomb(), 413, "image-too-large"),
    ],
)  # fmt: skip
async def test_files_that_are_not_acceptable_images_leave_nothing_behind(
    runtime: Runtime, client: AsyncClient, name: str, data: bytes, status: int, kind: str
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    response = await _upload(client, owner, material["id"], data, name=name)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{kind}")
    assert await _stored_objects(runtime, owner) == []
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        count = await session.scalar(select(func.count()).select_from(MaterialImage))
    assert count == 0


async def test_the_same_file_twice_is_reported_not_stored_again(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    first = await create_material(client, owner)
    second = await create_material(client, owner)
    data = photo(colour=(90, 100, 110))
    stored = await _upload(client, owner, first["id"], data)
    again = await _upload(client, owner, second["id"], data, name="copy.jpg")
    assert again.status_code == 409
    assert stored.json()["id"] in again.json()["detail"]
    assert len(await _stored_objects(runtime, owner)) == 1
    # Another organization may hold the same photo.
    other = await member(runtime, client)
    theirs = await create_material(client, other)
    assert (await _upload(client, other, theirs["id"], data)).status_code == 201


async def test_a_misspelt_form_field_refuses_the_upload(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    refused = await client.post(
        f"/api/v1/materials/{material['id']}/images",
        files={"file": ("tile.jpg", photo(), "image/jpeg")},
        data={"primary": "true"},
        headers=owner.headers,
    )

    assert refused.status_code == 422
    assert [(error["loc"], error["type"]) for error in refused.json()["errors"]] == [
        (["body", "primary"], "extra_forbidden")
    ]
    assert await _stored_objects(runtime, owner) == []


async def test_primary_image_order_and_deletion(runtime: Runtime, client: AsyncClient) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    base = f"/api/v1/materials/{material['id']}/images"
    first = (await _upload(client, owner, material["id"], photo(colour=(10, 20, 30)))).json()
    second = (await _upload(client, owner, material["id"], photo(colour=(40, 50, 60)))).json()
    assert (first["is_primary"], second["is_primary"]) == (True, False)
    assert second["position"] == first["position"] + 1

    made = await client.patch(
        f"{base}/{second['id']}", json={"is_primary": True}, headers=owner.headers
    )
    assert made.json()["is_primary"] is True
    listed = (await client.get(base, headers=owner.headers)).json()["items"]
    assert [i["is_primary"] for i in listed] == [False, True]
    # In order of position, page after page.
    pages = await every_page(client, base, headers=owner.headers, limit=1)
    assert [[i["id"] for i in page] for page in pages] == [[first["id"]], [second["id"]]]

    await _derive(runtime, owner, second["id"])
    deleted = await client.delete(f"{base}/{second['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    listed = (await client.get(base, headers=owner.headers)).json()["items"]
    assert [(i["id"], i["is_primary"]) for i in listed] == [(first["id"], True)]
    # Its original and both derivatives stay until the deletion has committed, then go.
    assert sum(second["id"] in key for key in await _stored_objects(runtime, owner)) == 3
    await run_queued_deletions(runtime, owner.organization_id)
    assert all(second["id"] not in key for key in await _stored_objects(runtime, owner))


async def test_lists_show_each_material_by_its_primary_image_once_ready(
    runtime: Runtime, client: AsyncClient
) -> None:
    owner = await member(runtime, client)
    material = await create_material(client, owner, name="Pietra grey")
    bare = await create_material(client, owner, name="Pietra bare")

    async def shown() -> dict[str, str | None]:
        """Each material's thumbnail as the material itself and every kind of search page
        (words by relevance, words by name, browsing) show it."""
        one = await client.get(f"/api/v1/materials/{material['id']}", headers=owner.headers)
        pages = []
        for query in ("q=pietra", "q=pietra&sort=name", "sort=name"):
            found = await client.get(
                f"/api/v1/search?{query}&mode=fulltext&facets=false", headers=owner.headers
            )
            pages.append(
                {
                    hit["material"]["id"]: hit["material"]["thumbnail_url"]
                    for hit in found.json()["items"]
                }
            )
        assert pages[0] == pages[1] == pages[2]
        assert pages[0][material["id"]] == one.json()["thumbnail_url"]
        return pages[0]

    first = (await _upload(client, owner, material["id"], photo(colour=(10, 20, 30)))).json()
    second = (await _upload(client, owner, material["id"], photo(colour=(40, 50, 60)))).json()
    # Nothing to show while the images are being processed.
    assert await shown() == {material["id"]: None, bare["id"]: None}

    # The second is ready first: shown until the primary image is.
    await _derive(runtime, owner, second["id"])
    assert (await shown())[material["id"]] == second["urls"]["thumbnail"]
    await _derive(runtime, owner, first["id"])
    assert (await shown())[material["id"]] == first["urls"]["thumbnail"]

    # Choosing another primary image changes the picture; the link serves it.
    await client.patch(
        f"/api/v1/materials/{material['id']}/images/{second['id']}",
        json={"is_primary": True},
        headers=owner.headers,
    )
    thumbnail = (await shown())[material["id"]]
    assert thumbnail == second["urls"]["thumbnail"]
    served = await client.get(thumbnail, headers=owner.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert (await shown())[bare["id"]] is None


async def test_heic_from_a_phone_is_accepted(runtime: Runtime, client: AsyncClient) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    owner = await member(runtime, client)
    material = await create_material(client, owner)
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 110, 100)).save(out, "HEIF")
    response = await _upload(
        client, owner, material["id"], out.getvalue(), name="IMG_0002.HEIC",
        content_type="image/heic",
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "heic"
    await _derive(runtime, owner, response.json()["id"])
    thumbnail = await client.get(response.json()["urls"]["thumbnail"], headers=owner.headers)
    assert Image.open(io.BytesIO(thumbnail.content)).size == (256, 192)
