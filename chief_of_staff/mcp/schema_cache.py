"""The tools' published JSON schemas, kept between starts of the server.

Pydantic takes a noticeable share of the server's start-up to write the input and output
schemas of every tool, and the client starts the server often (each Claude Desktop launch).
The schemas change only when the code does, so they are kept in the user's cache directory
under a fingerprint of this package's source files and of the Python and pydantic versions.
A missing, unreadable or malformed cache is rebuilt and rewritten; a cache that cannot be
written is skipped. Nothing but start-up speed depends on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core

from chief_of_staff.core.config import default_cache_dir
from chief_of_staff.core.files import write_atomically

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# One tool's published schemas: {"parameters": {...}, "output": {...}}.
Schemas = dict[str, dict[str, Any]]
_KEYS = ("parameters", "output")


def fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """A digest of everything the schemas are made from: the package's modules and the versions that render them."""
    digest = hashlib.sha256()
    for part in (sys.version, pydantic.VERSION, pydantic_core.__version__):
        digest.update(part.encode() + b"\0")
    for module in sorted(package_dir.rglob("*.py")):
        digest.update(module.relative_to(package_dir).as_posix().encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def tool_schemas(
    names: Sequence[str], compute: Callable[[str], dict[str, Any]], cache_dir: Path | None = None
) -> Schemas:
    """Each named tool's schemas, from the cache when it holds this fingerprint's, else computed and cached."""
    path = (cache_dir or default_cache_dir()) / f"tool-schemas-{fingerprint()}.json"
    cached = _load(path, names)
    if cached is not None:
        return cached
    schemas = {name: compute(name) for name in names}
    _save(path, schemas)
    return schemas


def _load(path: Path, names: Sequence[str]) -> Schemas | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not there yet, or torn by a crash mid-write of an older version: rebuild
    if not isinstance(found, dict) or set(found) != set(names):
        return None
    for entry in found.values():
        if (
            not isinstance(entry, dict)
            or set(entry) != set(_KEYS)
            or not all(isinstance(entry[key], dict) for key in _KEYS)
        ):
            return None
    return found


def _save(path: Path, schemas: Schemas) -> None:
    """Write atomically, and drop the files of older fingerprints."""
    try:
        write_atomically(path, json.dumps(schemas, separators=(",", ":")))
    except OSError as exc:  # a read-only home or a full disk costs speed, never the start
        log.debug("tool schema cache not written to %s: %s", path, exc)
        return
    for stale in path.parent.glob("tool-schemas-*.json"):
        if stale != path:
            stale.unlink(missing_ok=True)
