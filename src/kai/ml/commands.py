"""The `kai evaluate` and `kai models` commands."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kai.kit.cli import command_settings, progress_bar

# The vision and ml modules bring onnxruntime, OpenCV and scikit-learn: imported by the
# commands that use them, so that every other `kai` command starts without them.

models_app = typer.Typer(help="Image models: the backbones KAI embeds photos with.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@models_app.command("prepare")
def models_prepare(
    backbone: Annotated[
        list[str] | None, typer.Option(help="Backbones to make ready [default: all defaults].")
    ] = None,
) -> None:
    """Make the backbones ready (EfficientNet-Lite0 is exported to ONNX once) and describe them."""
    from kai.kit.errors import KaiError
    from kai.vision.backbones import DEFAULT_BACKBONES, get_backbone

    settings = command_settings()
    for name in backbone or list(DEFAULT_BACKBONES):
        try:
            loaded = get_backbone(
                name, model_dir=settings.model_dir, threads=settings.vision.threads
            )
        except KaiError as exc:
            _fail(f"{name}: {exc.detail or exc.title}")
            return
        typer.echo(
            f"{loaded.name}: {loaded.dimension} dimensions, input {loaded.input_side} px, "
            f"fingerprint {loaded.fingerprint}"
        )


def evaluate(
    directory: Annotated[Path, typer.Argument(help="A folder with one sub-folder per label.")],
    folds: Annotated[int, typer.Option(min=2, max=20, help="Stratified folds.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backbone: Annotated[
        list[str] | None,
        typer.Option(help="Backbones of the ensemble [default: efficientnet-lite0, handcrafted]."),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            help="Where to save the confusion matrix [default: DIR-confusion.png in the "
            "working directory]."
        ),
    ] = None,
    white_balance: Annotated[bool, typer.Option(help="Grey-world white balance first.")] = False,
    clahe: Annotated[bool, typer.Option(help="Equalise lightness locally (CLAHE) first.")] = False,
    mirrored: Annotated[
        bool,
        typer.Option(help="Test-time augmentation: each photo also embedded mirrored, averaged."),
    ] = False,
    cache: Annotated[
        bool,
        typer.Option(
            help="Keep each image's embeddings in the model store's feature cache, and read "
            "them there next time (by the file's content, backbone and preparation)."
        ),
    ] = True,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Where the feature cache is [default: the model store's features/]."),
    ] = None,
) -> None:
    """Cross-validate the default recognition pipeline on a folder-per-class image set.

    Files that are not images are skipped with a warning. Prints accuracy, macro-F1, a
    per-class table and the confusion matrix (also saved as a PNG).
    """
    from rich.console import Console
    from rich.table import Table

    from kai.kit.errors import KaiError
    from kai.ml.evaluation import (
        FeatureCache,
        evaluate_folder,
        find_labeled_images,
        render_confusion_matrix,
    )
    from kai.vision.backbones import DEFAULT_BACKBONES, get_backbone
    from kai.vision.preprocessing import Enhancement

    settings = command_settings()
    names = backbone or list(DEFAULT_BACKBONES)
    errors = Console(stderr=True)
    try:
        backbones = [
            get_backbone(name, model_dir=settings.model_dir, threads=settings.vision.threads)
            for name in names
        ]
        count = len(find_labeled_images(directory).paths)
        with progress_bar() as bar:
            # Reading every image, then embedding it with each backbone.
            task = bar.add_task("embedding", total=count * (1 + len(backbones)))
            report = evaluate_folder(
                directory,
                backbones,
                folds=folds,
                enhancement=Enhancement(
                    white_balance=white_balance, clahe=clahe, mirrored=mirrored
                ),
                progress=lambda done: bar.advance(task, done),
                cache=FeatureCache(cache_dir or settings.model_dir / "features") if cache else None,
            )
    except KaiError as exc:
        _fail(exc.detail or exc.title)
        return
    for path, reason in report.skipped:
        errors.print(f"[yellow]warning:[/] skipped {path}: {reason}")
    target = png or Path.cwd() / f"{directory.resolve().name}-confusion.png"
    render_confusion_matrix(report, target)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
        return
    console = Console()
    console.print(
        f"{report.images} images, {len(report.labels)} labels, {report.folds}-fold: "
        f"accuracy [bold]{report.accuracy:.3f}[/], macro-F1 [bold]{report.macro_f1:.3f}[/]"
    )
    for name, accuracy in report.backbone_accuracy.items():
        spent = report.milliseconds_per_image.get(name)
        took = "every image from the feature cache" if spent is None else f"{spent:.1f} ms an image"
        console.print(f"  {name} alone: accuracy {accuracy:.3f} ({took})")
    table = Table("label", "precision", "recall", "F1", "images")
    for scores in report.per_class:
        table.add_row(
            scores.label,
            f"{scores.precision:.3f}",
            f"{scores.recall:.3f}",
            f"{scores.f1:.3f}",
            str(scores.support),
        )
    console.print(table)
    matrix = Table("true \\ predicted", *(str(i) for i in range(len(report.labels))))
    for index, (label, row) in enumerate(zip(report.labels, report.confusion_matrix, strict=True)):
        matrix.add_row(f"{index} {label}", *(str(value) if value else "." for value in row))
    console.print(matrix)
    console.print(f"confusion matrix saved to {target}")


mlflow_app = typer.Typer(help="MLflow: every organization's training runs and model registry.")


@mlflow_app.command("uri")
def mlflow_uri(
    show_password: Annotated[
        bool, typer.Option(help="Print the store's password too, for MLFLOW_TRACKING_URI.")
    ] = False,
) -> None:
    """Where MLflow keeps the runs and the registry, and their files."""
    from sqlalchemy.engine import make_url

    from kai.ml import registry

    store = registry.store_of(command_settings())
    shown = make_url(store.tracking_uri).render_as_string(hide_password=not show_password)
    typer.echo(f"tracking and registry: {shown}")
    typer.echo(f"artifacts: {store.artifact_root}")


@mlflow_app.command("ui")
def mlflow_ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
) -> None:
    """Serve MLflow's UI over the platform's store, for its operators (every organization's
    runs: keep it on a private address). Starts the embedded database when it is the store."""
    import subprocess

    from kai.kit.pgembed import EmbeddedPostgres
    from kai.ml import registry

    settings = command_settings()
    embedded = None
    if settings.database_url is None and settings.ml.mlflow_tracking_uri is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        embedded.acquire()
    try:
        _, store = registry.client_of(settings)
        typer.echo(f"MLflow on http://{host}:{port} (Ctrl-C stops it)")
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", store.tracking_uri,
            "--default-artifact-root", store.artifact_root,
            "--host", host, "--port", str(port),
        ]  # fmt: skip
        # Ctrl-C stops the server, and then this command, quietly.
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(command, check=False)  # noqa: S603 - our own interpreter and flags
    finally:
        if embedded is not None:
            embedded.release()
