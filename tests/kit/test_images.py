from __future__ import annotations

import hashlib
import io
import struct
import zlib
from typing import Any, NoReturn

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from kai.kit.errors import KaiError
from kai.kit.images import (
    PROCESSED_SIDE,
    THUMBNAIL_SIDE,
    ImageLimits,
    ImageRejected,
    ImageTooLarge,
    decode_image,
    inspect_image,
    make_derivative,
)

RED, BLUE, WHITE = (220, 30, 30), (30, 30, 220), (255, 255, 255)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CORRUPT = "The image data is truncated or corrupt."


def encode(image: Image.Image, image_format: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def halves(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Red on the left, blue on the right: shows which way an image was turned."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def noise_jpeg(size: tuple[int, int]) -> bytes:
    # Noise, so the entropy-coded data is long and cutting it lands in the middle of a scan.
    return encode(Image.effect_noise(size, 60).convert("RGB"), "JPEG", quality=80)


def close_to(pixel: Any, expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(got - want) <= tolerance for got, want in zip(pixel, expected, strict=True))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of zero rows, compressed in blocks so even huge ones are cheap to build."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter type 0, then the packed bits
    rows_per_block = 1000
    compressor = zlib.compressobj()
    compressed = [
        compressor.compress(row * min(rows_per_block, height - first_row))
        for first_row in range(0, height, rows_per_block)
    ]
    compressed.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(compressed))
        + png_chunk(b"IEND", b"")
    )


def test_errors_are_problems_clients_see() -> None:
    assert issubclass(ImageRejected, KaiError)
    assert issubclass(ImageTooLarge, KaiError)
    assert (ImageRejected.status, ImageRejected.type) == (422, "image-rejected")
    assert (ImageTooLarge.status, ImageTooLarge.type) == (413, "image-too-large")


@pytest.mark.parametrize(
    ("pillow_format", "expected_format", "content_type"),
    [
        ("JPEG", "jpeg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("HEIF", "heic", "image/heic"),
    ],
)
def test_accepts_each_format_by_content(
    pillow_format: str, expected_format: str, content_type: str
) -> None:
    data = encode(halves((64, 48)), pillow_format)

    inspected = inspect_image(data)

    assert inspected.format == expected_format
    assert inspected.content_type == content_type
    assert (inspected.width, inspected.height) == (64, 48)
    assert inspected.sha256 == hashlib.sha256(data).hexdigest()
    assert inspected.size_bytes == len(data)
    decoded = decode_image(data)
    assert (decoded.mode, decoded.size) == ("RGB", (64, 48))
    assert close_to(decoded.getpixel((4, 24)), RED)
    assert close_to(decoded.getpixel((60, 24)), BLUE)


def iso_media(major: bytes, *compatible: bytes) -> bytes:
    brands = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\x00" * 64


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        pytest.param(b"", "The file is empty.", id="empty"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF document", id="pdf"),
        pytest.param(
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
            b"<script>alert(1)</script></svg>",
            "SVG",
            id="svg",
        ),
        pytest.param(
            b'\xef\xbb\xbf\n  <svg xmlns="http://www.w3.org/2000/svg"/>', "SVG", id="bare-svg"
        ),
        pytest.param(encode(halves(), "GIF"), "GIF image", id="gif"),
        pytest.param(encode(halves(), "TIFF"), "TIFF image", id="tiff"),
        pytest.param(encode(halves(), "BMP"), "BMP image", id="bmp"),
        pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page", id="html"),
        pytest.param(iso_media(b"avif", b"mif1", b"miaf"), "AVIF image", id="avif"),
        pytest.param(iso_media(b"isom", b"iso2", b"mp41"), "video", id="mp4"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a JPEG, PNG, WebP or HEIC", id="wav"),
        pytest.param(b"just some text", "not a JPEG, PNG, WebP or HEIC", id="text"),
    ],
)
def test_refuses_what_is_not_an_accepted_image(data: bytes, detail: str) -> None:
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data)
    assert refused.value.detail is not None
    assert detail in refused.value.detail
    with pytest.raises(ImageRejected):
        decode_image(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(noise_jpeg((200, 150))[:-3000], id="truncated-jpeg"),
        pytest.param(encode(Image.effect_noise((200, 150), 60), "PNG")[:-3000], id="truncated-png"),
        pytest.param(encode(halves(), "HEIF")[:-40], id="truncated-heic"),
        pytest.param(encode(halves(), "WEBP")[:-20], id="truncated-webp"),
        pytest.param(PNG_SIGNATURE + b"\x00" * 200, id="png-signature-then-garbage"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 200, id="jpeg-signature-then-garbage"),
    ],
)
def test_refuses_truncated_or_corrupt_data(data: bytes) -> None:
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data)
    assert refused.value.detail == CORRUPT


def test_refuses_a_jpeg_cut_in_half() -> None:
    data = noise_jpeg((300, 200))
    inspect_image(data)

    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        inspect_image(data[: len(data) // 2])


def test_the_test_png_builder_makes_valid_pngs() -> None:
    inspected = inspect_image(blank_bilevel_png(70, 30))

    assert (inspected.format, inspected.width, inspected.height) == ("png", 70, 30)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param((30_000, 30_000), id="beyond-pillow-error-threshold"),
        pytest.param((10_000, 10_000), id="beyond-pillow-warning-threshold"),
        pytest.param((20_001, 8), id="too-long-a-side"),
    ],
)
def test_refuses_too_many_pixels_from_the_header(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = blank_bilevel_png(*size)
    assert len(data) < 200_000

    def never_decode(self: object) -> NoReturn:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", never_decode)

    with pytest.raises(ImageTooLarge) as refused:
        inspect_image(data)
    assert refused.value.status == 413
    assert f"{size[0]} x {size[1]} pixels" in str(refused.value.detail)
    with pytest.raises(ImageTooLarge):
        make_derivative(data, max_side=THUMBNAIL_SIDE)


def test_refuses_more_bytes_than_the_limit() -> None:
    data = encode(halves(), "PNG")

    with pytest.raises(ImageTooLarge) as refused:
        inspect_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert refused.value.status == 413
    assert inspect_image(data, ImageLimits(max_bytes=len(data))).size_bytes == len(data)


def test_limits_on_pixels_and_sides_are_inclusive() -> None:
    data = encode(halves((40, 20)), "PNG")

    inspect_image(data, ImageLimits(max_pixels=800, max_side=40))
    with pytest.raises(ImageTooLarge):
        inspect_image(data, ImageLimits(max_pixels=799))
    with pytest.raises(ImageTooLarge):
        decode_image(data, ImageLimits(max_side=39))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        ImageLimits(max_pixels=0)


def test_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned a quarter clockwise
    data = encode(halves((40, 20)), "JPEG", exif=exif.tobytes(), quality=95)

    inspected = inspect_image(data)
    decoded = decode_image(data)
    derivative = make_derivative(data, max_side=PROCESSED_SIDE)

    assert (inspected.width, inspected.height) == (20, 40)
    assert decoded.size == (20, 40)
    # Turned upright, the left edge becomes the top.
    assert close_to(decoded.getpixel((10, 3)), RED)
    assert close_to(decoded.getpixel((10, 36)), BLUE)
    assert (derivative.width, derivative.height) == (20, 40)


def jpeg_with_location() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "KAI Test Camera"  # Make
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 22.0, 12.5)  # latitude
    gps[3], gps[4] = "E", (4.0, 53.0, 28.0)  # longitude
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(halves((300, 200)), "JPEG", exif=exif, xmp=xmp, icc_profile=srgb)


def test_derivatives_carry_no_metadata() -> None:
    data = jpeg_with_location()
    with Image.open(io.BytesIO(data)) as source:
        assert source.getexif().get_ifd(0x8825)
        assert {"exif", "xmp", "icc_profile"} <= source.info.keys()

    for side in (PROCESSED_SIDE, THUMBNAIL_SIDE):
        derivative = make_derivative(data, max_side=side)

        assert b"Exif" not in derivative.data
        assert b"KAI Test Camera" not in derivative.data
        assert b"xmpmeta" not in derivative.data
        with Image.open(io.BytesIO(derivative.data)) as reopened:
            assert reopened.format == "WEBP"
            assert len(reopened.getexif()) == 0
            assert not {"exif", "xmp", "icc_profile"} & reopened.info.keys()
    assert decode_image(data).info == {}


@pytest.mark.parametrize("pillow_format", ["JPEG", "PNG"])
def test_derivative_sizes(pillow_format: str) -> None:
    data = encode(halves((3000, 2000)), pillow_format)

    processed = make_derivative(data, max_side=PROCESSED_SIDE)
    thumbnail = make_derivative(data, max_side=THUMBNAIL_SIDE)

    assert (processed.width, processed.height) == (1024, 683)
    assert (thumbnail.width, thumbnail.height) == (256, 171)
    assert processed.content_type == thumbnail.content_type == "image/webp"
    for derivative in (processed, thumbnail):
        assert derivative.data.startswith(b"RIFF")
        with Image.open(io.BytesIO(derivative.data)) as reopened:
            assert reopened.size == (derivative.width, derivative.height)
            reopened_rgb = reopened.convert("RGB")
        assert close_to(reopened_rgb.getpixel((5, 5)), RED, tolerance=20)


def test_derivative_is_never_upscaled() -> None:
    derivative = make_derivative(encode(halves((100, 50)), "PNG"), max_side=PROCESSED_SIDE)

    assert (derivative.width, derivative.height) == (100, 50)


def test_derivative_arguments_are_checked() -> None:
    data = encode(halves(), "PNG")
    with pytest.raises(ValueError, match="max_side"):
        make_derivative(data, max_side=0)
    with pytest.raises(ValueError, match="quality"):
        make_derivative(data, max_side=THUMBNAIL_SIDE, quality=101)


def test_large_jpeg_is_decoded_at_reduced_scale() -> None:
    data = encode(halves((4000, 3000)), "JPEG")

    decoded = decode_image(data, max_side=224)

    assert min(decoded.size) >= 224
    assert decoded.width < 4000
    assert decoded.height < 3000
    assert decode_image(data, max_side=5000).size == (4000, 3000)


def test_embedded_srgb_profile_is_applied_and_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("RGB", (32, 32), (10, 200, 30)), "PNG", icc_profile=srgb)

    decoded = decode_image(data)

    assert decoded.mode == "RGB"
    assert "icc_profile" not in decoded.info
    assert close_to(decoded.getpixel((3, 3)), (10, 200, 30), tolerance=2)


def test_a_broken_profile_does_not_make_the_image_unusable() -> None:
    data = encode(Image.new("RGB", (32, 32), (10, 200, 30)), "JPEG", icc_profile=b"not a profile")

    assert close_to(decode_image(data).getpixel((3, 3)), (10, 200, 30))


@pytest.mark.parametrize("pillow_format", ["PNG", "WEBP"])
def test_transparency_is_flattened_onto_white(pillow_format: str) -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    image.paste((30, 30, 220, 255), (0, 0, 10, 20))
    data = encode(image, pillow_format, lossless=True)

    decoded = decode_image(data)

    assert decoded.mode == "RGB"
    assert decoded.getpixel((15, 10)) == WHITE
    assert close_to(decoded.getpixel((5, 10)), BLUE, tolerance=2)


def test_palette_png_with_transparency_is_flattened_onto_white() -> None:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, *RED])
    image.paste(1, (0, 0, 5, 10))
    data = encode(image, "PNG", transparency=0)

    decoded = decode_image(data)

    assert decoded.getpixel((8, 5)) == WHITE
    assert decoded.getpixel((2, 5)) == RED


def test_animated_image_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)

    assert inspect_image(data).format == "webp"
    assert decode_image(data).getpixel((8, 8)) == RED


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    data = encode(Image.new("I;16", (8, 8), 0x8000), "PNG")

    assert decode_image(data).getpixel((4, 4)) == (128, 128, 128)
