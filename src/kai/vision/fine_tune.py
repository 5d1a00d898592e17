"""Fine-tune an EfficientNet-Lite network on labelled photos, and export it to ONNX checked
against PyTorch: a backbone made for one organization's materials.

    python -m kai.vision.fine_tune MANIFEST.json OUT.onnx

The manifest names the network to start from, the photos (a file and a label each) and the
settings below; the child prints one JSON report as its last line. It runs in its own process
(torch never enters the API or the workers), on the GPU when there is one.

The method, chosen for a few hundred photos a class on a CPU:
- the ImageNet network's early blocks stay as they are (their edges and textures serve any
  material); the last `trainable_blocks` blocks and the head convolution learn, with a new
  linear classifier over the averaged feature map;
- that classifier is first fitted alone on the network's features as they are (a linear probe,
  then fine-tuning: its gradients start small, and do not tear down the features it came for);
- batch normalisation keeps ImageNet's statistics (a small batch would only blur them);
- every photo is seen anew each epoch: a random crop of 35 to 100 % of it at a random aspect,
  mirrored half the time, with its brightness, contrast and saturation each moved by up to
  25 %;
- AdamW with a short warm-up and a cosine decay, label smoothing 0.1;
- a stratified share of the photos (`holdout`) is never trained on: the report's held-out
  accuracy is measured there, by the network's own classifier.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# Each photo is decoded once, shrunk so that its short side is this much the network's input
# side (a crop of 35 % of it still has some detail to give), and kept in memory.
KEEP_SCALE = 1.5
# At most this many photos are fine-tuned on (drawn evenly across labels): memory and time
# stay bounded whatever the organization's catalog holds.
MAX_PHOTOS = 6000


@dataclass(frozen=True)
class Settings:
    network: str = "efficientnet-lite0"
    epochs: int = 8
    trainable_blocks: int = 3
    batch_size: int = 32
    # The classifier's; the network's layers learn at a tenth of it.
    learning_rate: float = 1e-3
    probe_steps: int = 300
    holdout: float = 0.2
    seed: int = 0
    threads: int = 0

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Settings:
        known = {key: manifest[key] for key in cls.__dataclass_fields__ if key in manifest}
        settings = cls(**known)
        if not 1 <= settings.epochs <= 100 or not 0 <= settings.holdout < 0.9:
            raise SystemExit("epochs must be 1 to 100, and holdout 0 to 0.9")
        return settings


def _keep(path: str, side: int) -> Image.Image:
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = side * KEEP_SCALE / min(image.size)
    if scale < 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return image


def _augmented(image: Image.Image, side: int, rng: random.Random) -> np.ndarray:
    """A random crop of the photo at the network's side, mirrored or not, its colours moved."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        share = rng.uniform(0.35, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        crop_w = round(math.sqrt(area * share * aspect))
        crop_h = round(math.sqrt(area * share / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = rng.randint(0, width - crop_w)
            top = rng.randint(0, height - crop_h)
            break
    else:
        crop_w = crop_h = min(width, height)
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
    view = image.resize(
        (side, side), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
    )
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhancer(view).enhance(rng.uniform(0.75, 1.25))
    return np.asarray(view)


def _centred(image: Image.Image, side: int) -> np.ndarray:
    """The photo as it is served: its centre square at the network's side."""
    return np.asarray(ImageOps.fit(image, (side, side), Image.Resampling.BILINEAR))


def _random(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - crops and splits, not secrets


def _split(labels: list[int], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified: `share` of each label's photos held out (none from a label of fewer than 3)."""
    rng = _random(seed)
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    train, held = [], []
    for indices in by_label.values():
        rng.shuffle(indices)
        count = round(len(indices) * share) if len(indices) >= 3 else 0
        held.extend(indices[:count])
        train.extend(indices[count:])
    return sorted(train), sorted(held)


def _capped(paths: list[str], labels: list[str], seed: int) -> tuple[list[str], list[str]]:
    if len(paths) <= MAX_PHOTOS:
        return paths, labels
    rng = _random(seed)
    by_label: dict[str, list[str]] = {}
    for path, label in zip(paths, labels, strict=True):
        by_label.setdefault(label, []).append(path)
    each = max(1, MAX_PHOTOS // len(by_label))
    kept = [
        (path, label)
        for label, group in by_label.items()
        for path in rng.sample(group, min(each, len(group)))
    ]
    return [path for path, _ in kept], [label for _, label in kept]


def fine_tune(manifest: dict[str, Any], target: Path) -> dict[str, Any]:
    import torch

    from kai.vision import networks

    settings = Settings.of(manifest)
    started = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = _random(settings.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    variant = networks.variant_named(settings.network)
    side = variant.input_side

    paths, names = _capped(
        [str(photo["path"]) for photo in manifest["photos"]],
        [str(photo["label"]) for photo in manifest["photos"]],
        settings.seed,
    )
    classes = sorted(set(names))
    if len(classes) < 2:
        raise SystemExit("fine-tuning needs photos of at least two labels")
    labels = [classes.index(name) for name in names]
    images = [_keep(path, side) for path in paths]
    train, held = _split(labels, settings.holdout, settings.seed)

    network = networks.pretrained(variant)
    blocks = network._blocks
    first_trained = max(0, len(blocks) - settings.trainable_blocks)
    trained_parts = [*blocks[first_trained:], network._conv_head]
    for parameter in network.parameters():
        parameter.requires_grad = False
    for part in trained_parts:
        for parameter in part.parameters():
            parameter.requires_grad = True
    classifier = torch.nn.Sequential(
        torch.nn.Dropout(0.2), torch.nn.Linear(network._bn1.num_features, len(classes))
    )
    network.to(device)
    classifier.to(device)

    def frozen_part(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x: torch.Tensor = network._swish(network._bn0(network._conv_stem(batch)))
            for block in blocks[:first_trained]:
                x = block(x)
        return x

    def trained_part(x: torch.Tensor) -> torch.Tensor:
        for block in blocks[first_trained:]:
            x = block(x)
        features = network._swish(network._bn1(network._conv_head(x)))
        pooled: torch.Tensor = features.mean((2, 3))
        return pooled

    def centred(indices: list[int]) -> torch.Tensor:
        return tensor([_centred(images[i], side) for i in indices])

    def tensor(views: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float()
        scaled: torch.Tensor = ((batch - 127.0) / 128.0).to(device)
        return scaled

    def probe() -> None:
        """Fit the classifier alone on the untouched network's features of the photos."""
        network.eval()
        with torch.no_grad():
            rows = torch.cat(
                [
                    trained_part(
                        frozen_part(
                            tensor(
                                [
                                    _centred(images[i], side)
                                    for i in train[s : s + settings.batch_size]
                                ]
                            )
                        )
                    )
                    for s in range(0, len(train), settings.batch_size)
                ]
            )
        truth = torch.tensor([labels[i] for i in train], device=device)
        linear = classifier[1]
        fitting = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(settings.probe_steps):
            loss = torch.nn.functional.cross_entropy(linear(rows), truth, label_smoothing=0.1)
            fitting.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            fitting.step()

    if settings.probe_steps:
        probe()
    parameters = [p for part in trained_parts for p in part.parameters()]
    optimizer = torch.optim.AdamW(
        [
            {"params": parameters, "lr": settings.learning_rate * 0.1},
            {"params": classifier.parameters(), "lr": settings.learning_rate},
        ],
        weight_decay=1e-4,
    )
    steps_per_epoch = max(1, math.ceil(len(train) / settings.batch_size))
    total_steps = steps_per_epoch * settings.epochs
    warmup = max(1, total_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            min(1.0, (step + 1) / warmup)
            * 0.5
            * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        ),
    )
    loss_of = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def measure(indices: list[int]) -> float | None:
        if not indices:
            return None
        network.eval()
        classifier.eval()
        right = 0
        with torch.no_grad():
            for start in range(0, len(indices), settings.batch_size):
                chunk = indices[start : start + settings.batch_size]
                scores = classifier(
                    trained_part(frozen_part(tensor([_centred(images[i], side) for i in chunk])))
                )
                truth = torch.tensor([labels[i] for i in chunk], device=device)
                right += int((scores.argmax(1) == truth).sum())
        return right / len(indices)

    history = []
    for epoch in range(settings.epochs):
        # Batch normalisation keeps ImageNet's statistics; dropout is on.
        network.eval()
        classifier.train()
        order = list(train)
        rng.shuffle(order)
        total, seen = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            chunk = order[start : start + settings.batch_size]
            batch = tensor([_augmented(images[i], side, rng) for i in chunk])
            truth = torch.tensor([labels[i] for i in chunk], device=device)
            loss = loss_of(classifier(trained_part(frozen_part(batch))), truth)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss) * len(chunk)
            seen += len(chunk)
        history.append({"epoch": epoch + 1, "loss": round(total / max(seen, 1), 4)})
        print(json.dumps({"progress": epoch + 1, "of": settings.epochs}), flush=True)
    trained_seconds = time.monotonic() - started
    held_out = measure(held)

    network.to("cpu")
    difference = networks.export_checked(networks.Features(network), side=side, target=target)
    return {
        "network": variant.name,
        "device": device.type,
        "photos": len(paths),
        "labels": classes,
        "trained_photos": len(train),
        "held_out_photos": len(held),
        "held_out_accuracy": None if held_out is None else round(held_out, 4),
        "epochs": settings.epochs,
        "trainable_blocks": settings.trainable_blocks,
        "history": history,
        "training_seconds": round(trained_seconds, 1),
        "export_difference": difference,
        "method": "linear probe, then the last blocks and head convolution fine-tuned, "
        "ImageNet batch statistics kept; random crops 35-100 %, mirror, "
        "brightness/contrast/saturation +-25 %; AdamW, warm-up and cosine decay, "
        "label smoothing 0.1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kai.vision.fine_tune", description=__doc__)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("target", type=Path)
    options = parser.parse_args()
    try:
        manifest = json.loads(options.manifest.read_text())
        report = fine_tune(manifest, options.target)
    except ImportError as exc:
        print(f"cannot fine-tune: {exc} (install KAI with its `ml` extra)", file=sys.stderr)
        raise SystemExit(3) from exc
    print(json.dumps({"report": report}), flush=True)


if __name__ == "__main__":
    main()
