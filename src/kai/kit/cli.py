"""What the `kai` command modules share: the settings (with logging configured) and a progress
bar on standard error. Rich is imported when a bar is drawn, not when `kai` starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kai.config import Settings, get_settings

if TYPE_CHECKING:
    from rich.progress import Progress


def command_settings() -> Settings:
    """The settings of this process, its logging configured by them."""
    from kai.kit.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def progress_bar() -> Progress:
    """A bar with a description, the count done of the total, and the time so far."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
