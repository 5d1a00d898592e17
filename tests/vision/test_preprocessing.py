from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kai.kit.images import ImageRejected
from kai.vision.backbones.handcrafted import HandcraftedBackbone
from kai.vision.preprocessing import (
    Enhancement,
    equalize_lightness,
    grey_world,
    prepare_image,
    texture_views,
)
from tests.vision.textures import grain, jpeg, stripes


def _halves(width: int, height: int) -> np.ndarray:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (220, 20, 20)
    pixels[:, width // 2 :] = (20, 20, 220)
    return pixels


def test_a_large_jpeg_is_decoded_near_the_size_needed() -> None:
    data = jpeg(grain(4000, blur=9, colour=(180, 170, 150), seed=1)[:3000])

    prepared = prepare_image(data, side=224)

    # JPEG scaling goes as far as it can while the view is still covered: an eighth here.
    assert (prepared.width, prepared.height) == (500, 375)
    assert [view.shape for view in prepared.views] == [(224, 224, 3)]
    assert all(view.dtype == np.uint8 for view in prepared.views)
    assert set(prepared.timings) == {"decode", "views"}
    assert all(value >= 0 for value in prepared.timings.values())


def test_the_exif_orientation_is_applied_before_the_views_are_cut() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: shown turned 90 degrees clockwise
    data = jpeg(_halves(320, 240), exif=exif)

    whole = prepare_image(data, side=64).views[0].astype(int)

    top, bottom = whole[:20].mean(axis=(0, 1)), whole[-20:].mean(axis=(0, 1))
    assert top[0] > 150 > top[2]  # red on top, as the phone showed it
    assert bottom[2] > 150 > bottom[0]


def test_views_are_centred_squares_of_the_photo() -> None:
    pixels = np.zeros((400, 600, 3), dtype=np.uint8)
    pixels[100:300, 200:400] = 255  # a white square in the middle of a black photo

    whole, centre = texture_views(pixels, 100, fractions=(1.0, 0.5))

    assert centre.mean() == pytest.approx(255, abs=1)
    assert 40 < whole.mean() < 90  # the square is a quarter of the centred 400 x 400


def test_enhancements_run_only_when_asked_and_are_timed() -> None:
    data = jpeg(grain(300, blur=6, colour=(200, 150, 90), seed=2))

    prepared = prepare_image(data, side=96, enhancement=Enhancement(white_balance=True, clahe=True))

    assert list(prepared.timings) == ["decode", "white_balance", "clahe", "views"]


def test_grey_world_neutralises_a_colour_cast_within_bounds() -> None:
    cast = np.full((50, 50, 3), (150, 120, 100), dtype=np.uint8)
    cast[::2] = (170, 140, 110)

    balanced = grey_world(cast).reshape(-1, 3).mean(axis=0)

    assert balanced.max() - balanced.min() < 3
    # A strongly coloured material is corrected for the light, not made grey.
    green = np.full((10, 10, 3), (20, 200, 20), dtype=np.uint8)
    still = grey_world(green).reshape(-1, 3).mean(axis=0)
    assert still[1] > 2 * still[0]


def test_clahe_raises_local_contrast_of_a_flat_photo() -> None:
    rng = np.random.default_rng(3)
    flat = (120 + rng.normal(0, 4, (128, 128, 1))).clip(0, 255).astype(np.uint8).repeat(3, axis=2)

    equalized = equalize_lightness(flat)

    assert equalized.shape == flat.shape
    assert equalized.std() > 2 * flat.std()


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7 not an image", b"", jpeg(grain(64, blur=4, colour=(90, 90, 90), seed=4))[:300]],
    ids=["pdf", "empty", "truncated-jpeg"],
)
def test_what_is_not_a_whole_image_is_refused(data: bytes) -> None:
    with pytest.raises(ImageRejected):
        prepare_image(data, side=64)


def test_png_with_transparency_is_flattened() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (80, 80), (0, 0, 0, 0)).save(buffer, format="PNG")

    prepared = prepare_image(buffer.getvalue(), side=32)

    assert prepared.views[0].mean() == pytest.approx(255)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def test_with_test_time_augmentation_a_photo_and_its_mirror_embed_alike() -> None:
    backbone = HandcraftedBackbone()
    texture = stripes(200, period=9, angle=0.4, colour=(180, 150, 120), seed=3)
    photo, mirror = _png(texture), _png(texture[:, ::-1].copy())

    def embedded(data: bytes, mirrored: bool) -> np.ndarray:
        prepared = prepare_image(
            data, side=backbone.input_side, enhancement=Enhancement(mirrored=mirrored)
        )
        assert len(prepared.views) == (2 if mirrored else 1)
        row: np.ndarray = backbone.embed([prepared.views])[0]
        return row

    assert not np.allclose(embedded(photo, False), embedded(mirror, False), atol=1e-3)
    assert np.allclose(embedded(photo, True), embedded(mirror, True), atol=1e-5)
