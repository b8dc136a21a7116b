"""Where the published vectors are: ``../shared/vectors`` beside the checkout when it is there
(the workplace's copy), else the copy in ``tests/vectors`` (the same files, so a bare clone runs
every vector test too)."""

from __future__ import annotations

from pathlib import Path

_TESTS = Path(__file__).resolve().parent
_SHARED = _TESTS.parents[1] / "shared" / "vectors"


def vector_path(name: str) -> Path:
    shared = _SHARED / name
    return shared if shared.exists() else _TESTS / "vectors" / name
