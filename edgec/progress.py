"""Progress bars for long work, on stderr and only when it is a terminal (never in pipes or CI logs)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["track"]

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar on an interactive stderr."""
    from rich.console import Console
    from rich.progress import track as rich_track

    console = Console(stderr=True)
    if not console.is_terminal:
        yield from items
        return
    yield from rich_track(items, description=description, total=total, console=console, transient=True)
