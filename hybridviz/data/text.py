"""Text normalisation shared by the zero-shot guard and search (one definition of \"the same text\")."""

from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    """The form under which two texts count as the same: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
