"""The audit anchor: the chain's head, exported to a small file outside the database.

The hash chain catches a changed, deleted or reordered row anywhere before the head. It cannot
catch someone with the file who deletes the last rows, or rewrites them and recomputes their
hashes ("re-signs the tail"): what is left still chains. The anchor remembers the head as it was
(row id and hash) somewhere else; verify checks that the anchored row still holds exactly that
hash. With CHIEF_OF_STAFF_AUDIT_KEY set, the anchor carries an HMAC-SHA256, so whoever can write
the anchor file but lacks the key cannot forge a new one.

The anchor stays current with what is committed: every write unit that appended audit rows moves
it to the new head after its COMMIT and before the caller hears the write is done (`Keeper`, run by
the store). A kill between the two leaves it one unit behind, which is allowed: those rows were
never acknowledged. A log found shorter than its anchor therefore lost rows that were
acknowledged, and the store refuses writes until the operator has looked and run
`chief-of-staff audit repair`.

A commit moves the anchor by overwriting its one fixed-size record in place and fdatasyncing it,
not by writing a temporary file and renaming it: on ext4 the rename path cost more than the durable
commit it follows, the in-place write about 0.7 of it (BENCHMARKS.md). The record fits one 512-byte
sector, which a disk writes whole; were it torn even so, it would read as malformed and the store
would refuse writes (safe, never silent). A missing or wrongly sized file is written whole
(temporary file, fsync, rename), as `audit anchor` and the repair always do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chief_of_staff.core import audit, files
from chief_of_staff.core.audit import GENESIS, ChainReport
from chief_of_staff.core.config import Settings

if TYPE_CHECKING:  # the store keeps the anchor, so it imports this module, not the other way round
    from chief_of_staff.core.db import Store, Tx

ANCHOR_ENV = "CHIEF_OF_STAFF_AUDIT_ANCHOR"
KEY_ENV = "CHIEF_OF_STAFF_AUDIT_KEY"
HEX64 = re.compile(r"[0-9a-f]{64}")

log = logging.getLogger(__name__)

# With no anchor yet (a new workspace, or a file moved away from its anchor) shutdown checks only the
# newest rows before anchoring the head: walking a million-row log took a minute, longer than a client
# waits for a server to stop, so no anchor would ever be written. `audit verify` walks everything.
FIRST_ANCHOR_ROWS = 10_000
# The anchor file is one record of this many bytes (JSON padded with spaces), so a commit can
# overwrite it in place.
RECORD_BYTES = 512
_BINARY = getattr(os, "O_BINARY", 0)
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS and Windows have no fdatasync


class AnchorRefused(ValueError):
    """The anchor file exists but cannot be trusted: unreadable, malformed, or its MAC does not verify."""


@dataclass(frozen=True)
class Anchor:
    """The head of the chain as exported: row id, that row's hash, when it was anchored, and the MAC if keyed."""

    row_id: int
    hash: str
    at: str
    mac: str | None = None


@dataclass(frozen=True)
class AnchorConfig:
    """Where the anchor lives and the key (if any) that signs it."""

    path: Path
    key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AnchorCheck:
    """The chain walk plus the comparison of its head against the anchor."""

    chain: ChainReport
    anchor: Anchor | None
    problem: str | None
    note: str

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.problem is None


def locate(db_path: Path) -> AnchorConfig:
    """`<db>.anchor.json` beside the database unless $CHIEF_OF_STAFF_AUDIT_ANCHOR says otherwise.

    An override that names a folder holds one anchor per workspace, `<db>-<digest of its path>.anchor.json`:
    one server may serve several workspaces, and each commit moves its own workspace's anchor.
    """
    override = os.environ.get(ANCHOR_ENV)
    name = db_path.name + ".anchor.json"
    path = db_path.with_name(name) if not override else Path(override).expanduser().resolve()
    if override and path.is_dir():
        digest = hashlib.sha256(str(db_path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:12]
        path = path / f"{db_path.name}-{digest}.anchor.json"
    key = os.environ.get(KEY_ENV)
    return AnchorConfig(path, key.encode("utf-8") if key else None)


def sign(key: bytes, row_id: int, row_hash: str, at: str) -> str:
    """HMAC-SHA256 over `row_id|hash|at`, hex."""
    return hmac.new(key, f"{row_id}|{row_hash}|{at}".encode(), hashlib.sha256).hexdigest()


def _parse(data: Any) -> Anchor:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    row_id, row_hash, at, mac = (data.get(name) for name in ("row_id", "hash", "at", "mac"))
    if type(row_id) is not int or row_id < 0:
        raise ValueError("row_id must be a whole number >= 0")
    if not isinstance(row_hash, str) or not HEX64.fullmatch(row_hash):
        raise ValueError("hash must be 64 lowercase hex digits")
    if not isinstance(at, str) or not (mac is None or isinstance(mac, str)):
        raise ValueError("at and mac must be strings")
    return Anchor(row_id, row_hash, at, mac)


# Refusals name no path: they reach a model verbatim, as the reason a workspace refuses writes.
def _authenticate(config: AnchorConfig, anchor: Anchor) -> None:
    if config.key is None:
        if anchor.mac is not None:
            raise AnchorRefused(f"the audit anchor is keyed: set {KEY_ENV} to the key it was written with")
        return
    if anchor.mac is None:
        raise AnchorRefused(
            f"the audit anchor carries no MAC although {KEY_ENV} is set: it was not written "
            "with the key, so it may be forged"
        )
    if not hmac.compare_digest(anchor.mac, sign(config.key, anchor.row_id, anchor.hash, anchor.at)):
        raise AnchorRefused(
            f"the audit anchor has a MAC that does not verify: it was forged, or {KEY_ENV} "
            "is not the key it was written with"
        )


def read_anchor(config: AnchorConfig) -> Anchor | None:
    """The exported anchor, or None if none was exported yet. Raises AnchorRefused if it cannot be trusted."""
    try:
        text = config.path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorRefused(f"the audit anchor cannot be read ({type(exc).__name__})") from exc
    try:
        anchor = _parse(json.loads(text))
    except ValueError as exc:
        raise AnchorRefused(f"the audit anchor is not a valid anchor: {exc}") from exc
    _authenticate(config, anchor)
    return anchor


def _signed(config: AnchorConfig, row_id: int, row_hash: str, at: str) -> tuple[Anchor, bytes]:
    """The anchor and its record: compact JSON padded with spaces to RECORD_BYTES, ending in a newline."""
    mac = None if config.key is None else sign(config.key, row_id, row_hash, at)
    anchor = Anchor(row_id, row_hash, at, mac)
    payload = json.dumps({name: value for name, value in asdict(anchor).items() if value is not None})
    return anchor, payload.encode("utf-8").ljust(RECORD_BYTES - 1) + b"\n"


def write_anchor(config: AnchorConfig, row_id: int, row_hash: str, at: str) -> Anchor:
    """Write the anchor file whole (temp file, fsync, os.replace): a reader sees the old one or the new one."""
    anchor, record = _signed(config, row_id, row_hash, at)
    files.make_private_folder(config.path.parent)
    fd, temp = tempfile.mkstemp(prefix=config.path.name + ".", suffix=".tmp", dir=config.path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, config.path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return anchor


def write_head(config: AnchorConfig, row_id: int, row_hash: str, at: str) -> Anchor:
    """Move the anchor to a committed head: overwrite its one record in place, then fdatasync.

    A missing file, or one that is not exactly one record long, is written whole instead.
    """
    anchor, record = _signed(config, row_id, row_hash, at)
    try:
        fd = os.open(config.path, os.O_WRONLY | _BINARY)
    except FileNotFoundError:
        return write_anchor(config, row_id, row_hash, at)
    try:
        if os.fstat(fd).st_size != RECORD_BYTES:
            return write_anchor(config, row_id, row_hash, at)
        if os.write(fd, record) != RECORD_BYTES:
            raise OSError("a short write to the audit anchor")
        _datasync(fd)
    finally:
        os.close(fd)
    return anchor


def _short(digest: str) -> str:
    return digest[:16] + "…"


async def compare(tx: Tx, anchor: Anchor) -> str | None:
    """None if the anchored row still holds the anchored hash, else what happened to it."""
    if anchor.row_id == 0:
        return None if anchor.hash == GENESIS else "the anchor names row 0 with a hash other than the genesis"
    found = await tx.scalar("SELECT hash FROM audit_log WHERE id = ?", (anchor.row_id,))
    if found is None:
        last = await tx.scalar("SELECT max(id) FROM audit_log")
        how = (
            "it was deleted"
            if last is not None and last > anchor.row_id
            else f"the log was truncated; it now ends at row {last or 0}"
        )
        return f"anchored row {anchor.row_id} is missing ({how})"
    if found != anchor.hash:
        return (
            f"rows at/after {anchor.row_id} were rewritten: anchored hash {_short(anchor.hash)}, "
            f"found {_short(str(found))}"
        )
    return None


async def check(tx: Tx, config: AnchorConfig) -> AnchorCheck:
    """Walk the whole chain, then check that the anchored row still holds the anchored hash."""
    chain = await audit.verify_chain(tx)
    try:
        anchor = read_anchor(config)
    except AnchorRefused as exc:
        return AnchorCheck(chain, None, str(exc), "anchor refused")
    if anchor is None:
        return AnchorCheck(
            chain,
            None,
            None,
            f"no anchor at {config.path} yet (`chief-of-staff audit anchor` "
            "writes one; until then a truncated or re-signed tail goes unseen)",
        )
    problem = await compare(tx, anchor)
    note = problem or f"anchor at row {anchor.row_id} (hash {_short(anchor.hash)}) matches"
    return AnchorCheck(chain, anchor, problem, note)


async def export(store: Store, config: AnchorConfig) -> AnchorCheck:
    """Verify everything, then anchor the head. Writes nothing unless the check passes.

    A mismatched anchor is evidence, so it is never overwritten: move it aside to accept the log as it is.
    """
    async with store.read() as tx:
        result = await check(tx, config)
        at = tx.now_text
    if not result.ok:
        return result
    anchor = write_anchor(config, result.chain.head_id, result.chain.head_hash, at)
    return AnchorCheck(
        result.chain, anchor, None, f"anchored row {anchor.row_id} (hash {_short(anchor.hash)}) in {config.path}"
    )


async def _fresh_head(tx: Tx, previous: Anchor | None) -> ChainReport | None:
    """The verified head if it moved past the anchor; checks only the rows after it (or the newest, if none)."""
    if previous is None:
        window = await tx.one(
            "SELECT id, hash FROM audit_log WHERE id <= (SELECT max(id) FROM audit_log) - ? ORDER BY id DESC LIMIT 1",
            (FIRST_ANCHOR_ROWS,),
        )
        chain = await audit.verify_chain(tx, after=None if window is None else (window["id"], window["hash"]))
    else:
        problem = await compare(tx, previous)
        if problem is not None:
            raise AnchorRefused(problem)
        chain = await audit.verify_chain(tx, after=(previous.row_id, previous.hash))
    if not chain.ok:
        raise AnchorRefused(f"the chain is broken at row {chain.first_bad_id}: {chain.problem}")
    return chain if chain.rows > 0 or previous is None else None


async def export_if_stale(store: Store, settings: Settings) -> Anchor | None:
    """Anchor the head if it moved since the last anchor; for the server's shutdown. Never raises on
    anchor trouble: it logs a warning and leaves the old anchor (the evidence) in place.

    Only the rows after the existing anchor are walked (with none, the newest FIRST_ANCHOR_ROWS), so
    shutdown stays quick on a large log; `audit verify` still walks the whole chain.
    """
    config = locate(settings.db_path)
    try:
        async with store.read() as tx:
            chain = await _fresh_head(tx, read_anchor(config))
            at = tx.now_text
        if chain is None:
            return None
        return write_anchor(config, chain.head_id, chain.head_hash, at)
    except (AnchorRefused, OSError) as exc:
        log.warning("audit anchor %s not updated (%s); run `chief-of-staff audit verify`", config.path, exc)
        return None


class Keeper:
    """One store's side of the anchor: the tail checked at open, the anchor moved at every commit.

    `head` is the (row id, hash) this store knows the anchor holds: vouched for at open, then moved by
    each of its commits. A unit whose first audit row would build on an older head than that found
    the log shorter (or rewritten) while the store was open, and is refused before it commits.
    """

    def __init__(self, config: AnchorConfig) -> None:
        self.config = config
        self.head: tuple[int, str] | None = None
        self._behind: tuple[int, str] | None = None  # the head to catch up to, found by inspect

    async def inspect(self, tx: Tx) -> str | None:
        """None if the anchored row still holds the anchored hash (or there is no anchor yet), else what is wrong.

        Rows after the anchor are allowed: a kill between COMMIT and the anchor's move leaves one
        unit of them, never acknowledged. They must chain from the anchored row, and `catch_up`
        then moves the anchor onto them, so kills in that window never leave it further behind.
        (Past FIRST_ANCHOR_ROWS of them, left by a version that anchored only at shutdown, the
        next commit moves it instead, unchecked, as shutdown used to.)
        """
        try:
            found = read_anchor(self.config)
        except AnchorRefused as exc:
            return str(exc)
        if found is None:
            return None
        problem = await compare(tx, found)
        if problem is not None:
            return f"the audit log no longer holds what its anchor vouches for: {problem}"
        self.head = (found.row_id, found.hash)
        after = await tx.scalar("SELECT count(*) FROM audit_log WHERE id > ?", (found.row_id,))
        if 0 < after <= FIRST_ANCHOR_ROWS:
            chain = await audit.verify_chain(tx, after=self.head)
            if not chain.ok:
                return f"the audit rows after the anchored row {found.row_id} do not chain from it: {chain.problem}"
            self._behind = (chain.head_id, chain.head_hash)
        return None

    def catch_up(self, at: str) -> None:
        """Move the anchor onto the rows inspect found after it (and vouched for), if there were any."""
        if self._behind is not None:
            self.committed(self._behind, at)
            self._behind = None

    def refuses(self, base: tuple[int, str] | None) -> str | None:
        """Why a unit built on `base` (the head before its first audit row) must not commit, if it must not."""
        if base is None or self.head is None:
            return None
        known_id, known_hash = self.head
        if base[0] < known_id:
            return f"the audit log lost rows while the workspace was open: it reached row {known_id}, now row {base[0]}"
        if base[0] == known_id and base[1] != known_hash:
            return f"audit row {known_id} was rewritten while the workspace was open"
        return None

    def committed(self, head: tuple[int, str], at: str, *, whole: bool = False) -> None:
        """Move the anchor to a committed head. Never raises: the unit is committed whatever happens here."""
        try:
            (write_anchor if whole else write_head)(self.config, head[0], head[1], at)
        except OSError as exc:
            log.warning("audit anchor %s not moved to row %d (%s)", self.config.path, head[0], exc)
            return
        self.head = head
