"""The generated non-materials that trainings, tests and benchmarks/ood.py measure on."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from kai.vision import non_materials


def test_every_kind_is_made_alike_from_a_seed_as_rgb_images() -> None:
    made = non_materials.non_materials(3, seed=4, side=96)
    again = non_materials.non_materials(3, seed=4, side=96)

    assert [kind for kind, _ in made] == [kind for kind in non_materials.KINDS for _ in range(3)]
    assert all(pixels.shape == (96, 96, 3) and pixels.dtype == np.uint8 for _, pixels in made)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(made, again, strict=True))
    other = non_materials.non_materials(3, seed=5, side=96)
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(made, other, strict=True))


def test_each_kind_is_what_it_says() -> None:
    rng = np.random.default_rng(0)

    flat = non_materials.flat(rng, 64)
    assert len(np.unique(flat.reshape(-1, 3), axis=0)) == 1
    board = non_materials.checkerboard(rng, 64)
    assert len(np.unique(board.reshape(-1, 3), axis=0)) <= 2
    text = non_materials.text(rng, 128)
    background = np.median(text.reshape(-1, 3), axis=0)
    assert np.any(np.abs(text.astype(int) - background).sum(axis=2) > 60)  # some ink
    with Image.open(io.BytesIO(non_materials.png(non_materials.noise(rng, 64)))) as image:
        assert (image.format, image.size) == ("PNG", (64, 64))
