"""The `kai dataset import`, `kai train` and `kai recognize` commands: the recognition path
from a folder of labelled photos to an answer, in this process, without the HTTP server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from kai.config import Settings
from kai.kit.cli import command_settings, progress_bar

dataset_app = typer.Typer(help="Folders of labelled photos.", no_args_is_help=True)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from sqlalchemy.ext.asyncio import AsyncSession

    from kai.runtime import Runtime

# Photos that a refresh of visual similarity embeds in one go after an import.
EMBED_ALL = 1_000_000


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _run(settings: Settings, work: Callable[[Runtime], Awaitable[Any]]) -> Any:
    from kai.kit.errors import KaiError
    from kai.runtime import run_with_runtime

    try:
        return run_with_runtime(settings, work)
    except KaiError as exc:
        _fail(exc.detail or exc.title)


@dataset_app.command("import")
def dataset_import(
    directory: Annotated[Path, typer.Argument(help="One sub-folder of photos per label.")],
    organization: Annotated[str, typer.Option(help="Slug of the organization.")],
    materials: Annotated[
        str, typer.Option(help="`label`: one material per folder; `image`: one per photo.")
    ] = "label",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Make a folder of labelled photos catalog content: a category per folder, materials, and
    each photo as an image (its derivatives and visual embedding made now)."""
    from kai.catalog.transfers import operator_for
    from kai.kit.db import act_for, scoped_transaction
    from kai.ml.datasets import import_folder
    from kai.search.visual import catalog_backbone, refresh_image_embeddings

    if materials not in ("label", "image"):
        _fail("--materials is label or image")
    per: Literal["label", "image"] = "label" if materials == "label" else "image"
    settings = command_settings()

    async def work(runtime: Runtime) -> dict[str, Any]:
        with progress_bar() as bar:
            task = bar.add_task("importing", total=None)

            async def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            # The images stored go again if the folder's transaction does not commit.
            async with scoped_transaction(runtime.session_factory, organization_id=None) as session:
                actor = await operator_for(session, organization)
                await act_for(session, organization_id=actor.organization_id)
                report = await import_folder(
                    session,
                    runtime.storage,
                    actor=actor,
                    root=directory,
                    materials_per=per,
                    parent_id=None,
                    limits=runtime.image_limits,
                    progress=progress,
                )
            bar.update(task, description="embedding for similarity", completed=0, total=None)
            backbone = catalog_backbone(settings)
            async with scoped_transaction(
                runtime.session_factory, organization_id=actor.organization_id
            ) as session:
                embedded = await refresh_image_embeddings(
                    session,
                    runtime.storage,
                    organization_id=actor.tenant_id,
                    backbone=backbone,
                    batch=EMBED_ALL,
                    limits=runtime.image_limits,
                    progress=progress,
                )
        return {
            "labels": report.labels,
            "categories_created": report.categories_created,
            "materials_created": report.materials_created,
            "images_added": report.images_added,
            "duplicates": report.duplicates,
            "embedded": embedded["embedded"],
            "skipped": [{"path": path, "reason": reason} for path, reason in report.skipped],
        }

    summary = _run(settings, work)
    for skipped in summary["skipped"]:
        typer.echo(f"warning: skipped {skipped['path']}: {skipped['reason']}", err=True)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{summary['labels']} labels: {summary['categories_created']} categories and "
        f"{summary['materials_created']} materials created, {summary['images_added']} photos "
        f"added ({summary['duplicates']} already there, {len(summary['skipped'])} skipped)"
    )


def train(
    organization: Annotated[str, typer.Option(help="The organization to train for, by its slug.")],
    label_by: Annotated[
        str,
        typer.Option(
            help="What names each photo's label: `category`, its material's category; "
            "`material`, the material itself."
        ),
    ] = "category",
    category_level: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --label-by category, the level of the category tree that names the "
            "labels (1: the top-level categories); left out, each material's own category.",
        ),
    ] = None,
    backbone: Annotated[
        list[str] | None,
        typer.Option(
            help="A backbone of the ensemble; repeat it for several "
            "[default: efficientnet-lite0, handcrafted]."
        ),
    ] = None,
    fine_tune: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune this network (efficientnet-lite0, -lite1 or -lite2) on the photos "
            "first, and stand the version on the result.",
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(min=1, max=50, help="With --fine-tune: passes over the photos.")
    ] = 8,
    activate: Annotated[
        bool, typer.Option(help="Make the new version the one recognitions use.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Train a new model version on the organization's photos, in this process."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from kai.catalog.transfers import operator_for
    from kai.kit.db import act_for, scoped_transaction
    from kai.kit.errors import KaiError
    from kai.ml import training, versions
    from kai.ml.schemas import ModelVersionRead
    from kai.runtime import run_with_runtime

    settings = command_settings()
    try:
        options = training.TrainingOptions.model_validate(
            {
                "label_by": label_by,
                "category_level": category_level,
                "activate": activate,
                **({"backbones": backbone} if backbone else {}),
                **({"fine_tune": {"network": fine_tune, "epochs": epochs}} if fine_tune else {}),
            }
        )
    except ValidationError as exc:
        _fail(str(exc.errors()[0]["msg"]))

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.session_factory.begin() as session:
            actor = await operator_for(session, organization)
            await act_for(session, organization_id=actor.organization_id)
            version = await training.new_version(session, actor=actor, options=options)
            version_id = version.id

        def sessions() -> AbstractAsyncContextManager[AsyncSession]:
            return scoped_transaction(
                runtime.session_factory, organization_id=actor.organization_id
            )

        try:
            with progress_bar() as bar:
                task = bar.add_task(
                    "fine-tuning, then embedding photos" if fine_tune else "embedding photos",
                    total=None,
                )

                async def progress(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                await training.run_training(
                    sessions,
                    runtime.storage,
                    organization_id=actor.tenant_id,
                    version_id=version_id,
                    settings=settings,
                    limits=runtime.image_limits,
                    progress=progress,
                )
        except BaseException as exc:
            # Whatever stops it (a reason, an unexpected error, Ctrl-C), the version does
            # not stay "training": it fails, saying why as the job of a training would.
            async with sessions() as session:
                await training.record_failure(
                    session,
                    organization_id=actor.tenant_id,
                    version_id=version_id,
                    reason=_stopped_because(exc),
                )
            raise
        async with sessions() as session:
            trained = await versions.get_version(session, actor=actor, version_id=version_id)
            return ModelVersionRead.model_validate(trained).model_dump(mode="json")

    try:
        version = run_with_runtime(settings, work)
    except training.TooFewPhotos as exc:
        # The same reason the version records, and how to get past it with this command.
        _fail(f"{exc.reason} {training.advice(exc.remedy, as_flags=True)}")
    except KaiError as exc:
        _fail(exc.detail or exc.title)
    if as_json:
        typer.echo(json.dumps(version))
        return
    metrics = version["metrics"]
    console = Console()
    console.print(
        f"version {version['number']} ready{' and active' if version['active'] else ''}: "
        f"{metrics['validation']['photos']} photos, {len(version['labels'])} labels, "
        f"{metrics['validation']['folds']}-fold validation accuracy "
        f"[bold]{metrics['accuracy']:.3f}[/], macro-F1 [bold]{metrics['macro_f1']:.3f}[/]"
    )
    table = Table("label", "photos", "precision", "recall", "F1")
    photos = {label["label"]: label["photos"] for label in version["labels"]}
    for row in metrics["per_class"]:
        table.add_row(
            row["label"],
            str(photos.get(row["label"], "")),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
        )
    console.print(table)


def _stopped_because(exc: BaseException) -> str:
    """What a version stopped by `exc` records: a reason meant for people, or a fixed
    sentence (an unexpected error's own words go to the terminal, not into the version)."""
    from kai.kit.errors import KaiError

    if isinstance(exc, KaiError):
        return exc.detail or exc.title
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "The training was interrupted."
    return "The training stopped on an unexpected error."


def recognize(
    photos: Annotated[list[Path], typer.Argument(help="Photos to recognize.")],
    organization: Annotated[str, typer.Option(help="Slug of the organization.")],
    top_k: Annotated[int, typer.Option(min=1, max=50, help="Predictions shown.")] = 3,
    similar_k: Annotated[int, typer.Option(min=0, max=100, help="Similar materials.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per photo.")] = False,
) -> None:
    """Recognize photos with the organization's active model (each stored as a recognition)."""
    from kai.catalog.transfers import operator_for
    from kai.kit.db import act_for, scoped_transaction
    from kai.kit.errors import KaiError
    from kai.ml import inference
    from kai.recognition import service

    settings = command_settings()

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        answers = []
        for photo in photos:
            try:
                data = photo.read_bytes()
            except OSError as exc:
                answers.append({"photo": str(photo), "error": str(exc)})
                continue
            try:
                async with scoped_transaction(
                    runtime.session_factory, organization_id=None
                ) as session:
                    actor = await operator_for(session, organization)
                    await act_for(session, organization_id=actor.organization_id)
                    recognized = await service.recognize(
                        session,
                        runtime.storage,
                        actor=actor,
                        data=data,
                        file_name=photo.name,
                        options=service.RecognitionOptions(top_k=top_k, similar_k=similar_k),
                        settings=settings,
                        limits=runtime.image_limits,
                    )
            except inference.NoTrainedModel:
                raise
            except KaiError as exc:
                answers.append({"photo": str(photo), "error": exc.detail or exc.title})
                continue
            answers.append(_answer(photo, recognized))
        return answers

    answers = _run(settings, work)
    failed = False
    for answer in answers:
        if "error" in answer:
            failed = True
            typer.echo(f"{answer['photo']}: {answer['error']}", err=True)
            continue
        if as_json:
            sys.stdout.write(json.dumps(answer) + "\n")
            continue
        verdict = (
            f"unknown ({answer['unknown_reason'].replace('_', ' ')})"
            if answer["unknown"]
            else f"{answer['label']} ({answer['confidence']:.0%})"
        )
        typer.echo(f"{answer['photo']}: {verdict}")
        for prediction in answer["predictions"]:
            typer.echo(f"  {prediction['confidence']:6.1%}  {prediction['label']}")
        for similar in answer["similar"]:
            typer.echo(f"  similar {similar['score']:.3f}  {similar['name']} ({similar['code']})")
    if failed:
        raise typer.Exit(1)


def _answer(photo: Path, recognized: Any) -> dict[str, Any]:
    recognition = recognized.recognition
    return {
        "photo": str(photo),
        "recognition_id": str(recognition.id),
        "unknown": recognition.unknown,
        "unknown_reason": recognition.unknown_reason,
        "label": recognition.label,
        "confidence": recognition.confidence,
        "predictions": recognition.predictions,
        "similar": recognition.similar,
        "model_version": recognized.model_version_number,
        "timings": recognition.timings,
    }
