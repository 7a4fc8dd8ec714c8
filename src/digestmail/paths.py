"""Where bundled files live, whether installed as a wheel or run from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_root(override: Path | None = None) -> Path:
    """The ``templates/`` folder: the setting if given, else the wheel's copy, else the repo's."""
    if override is not None:
        return override
    bundled = _PACKAGE / "_templates"
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent.parent / "templates"
