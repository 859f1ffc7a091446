"""What a matplotlib figure shows in words, for tests that check a figure's labels."""

from __future__ import annotations

from typing import Any


def figure_text(figure: Any) -> str:
    """Every text drawn on a figure (titles, labels, ticks, legend), joined by spaces."""
    return " ".join(artist.get_text() for artist in figure.findobj(
        lambda artist: hasattr(artist, "get_text")) if artist.get_text())
