"""The console's door: one-time login links and the sessions they open.

The console (chief_of_staff.http.console) is the operator's verified channel in a browser. Getting in
takes a login link minted on the operator's machine (`chief-of-staff console`, or the server when the
chat asks it to open the console): a one-time secret that expires within minutes. Redeeming it opens a
session, whose own secret becomes the browser's cookie and whose CSRF token every form of the session
carries. The two secrets (the link's and the session's) are stored only as SHA-256 digests: they are
high-entropy random strings, so a plain digest is enough (as for access tokens), and a copy of the file
opens no console. The CSRF token is stored as it is: it is not a credential on its own (a form is
accepted only with the session's cookie too), and the pages must show it to put it in their forms.

Every act made in a session is audited as `Actor("operator:console-N", "verified")`: the verified
channel, and console session N made it. Minting a link, logging in and logging out are audited in
the transaction that does them. Marking a session as seen is bookkeeping (like a token's last use),
not a change to the business, so it is not audited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from chief_of_staff.core import audit
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import AccessRefused, InvalidInput

LOGIN_TTL = timedelta(minutes=5)
MAX_LOGIN_TTL = timedelta(minutes=15)
# A session ends this long after logging in, or after this long without a request, whichever is first.
SESSION_TTL = timedelta(hours=12)
IDLE_TIMEOUT = timedelta(hours=2)
# A session's last request is recorded at most this often, so most requests only read.
SEEN_RESOLUTION = timedelta(minutes=1)
LOGIN_PREFIX = "cosl_"
SESSION_PREFIX = "coss_"
_LONGEST_SECRET = 200
_LONGEST_PAGE = 200
# A console page: an absolute path on the console itself ("/", "/goals", "/decisions/D7"), never
# another host ("//evil.example") or a scheme, so a link can only land the browser on the console.
_PAGE = re.compile(r"/(?:[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*)?(?:#[A-Za-z0-9._~-]+)?")
AGAIN = (
    "Run `chief-of-staff console` again for a fresh login link "
    "(or `chief-of-staff console --link` while a console is running)."
)


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session: its number, the CSRF token its forms carry, and its times."""

    id: int
    csrf: str
    created_at: str
    expires_at: str
    last_seen_at: str

    @property
    def label(self) -> str:
        """How the audit names the session: "console-3"."""
        return f"console-{self.id}"

    @property
    def actor(self) -> Actor:
        """Who makes the acts of this session: the operator, on the verified channel, in this session."""
        return Actor(f"operator:{self.label}", "verified")


@dataclass(frozen=True)
class Opened:
    """What redeeming a login link gives the browser: the session, its secret (the cookie) and where to land."""

    session: ConsoleSession
    secret: str
    page: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_page(page: str) -> str:
    """A console path a login link may land on ("/", "/goals", "/decisions/D7"); anything else is refused."""
    if not isinstance(page, str) or len(page) > _LONGEST_PAGE or _PAGE.fullmatch(page) is None or ".." in page:
        raise InvalidInput(
            'page: send a path on the console, such as "/", "/goals" or "/decisions/D7" '
            "(letters, digits, '.', '_', '~' and '-' between the slashes)."
        )
    return page


def _link_label(number: int) -> str:
    return f"console-link-{number}"


async def mint_login(tx: Tx, actor: Actor, *, ttl: timedelta = LOGIN_TTL, page: str = "/") -> str:
    """A new one-time login link's secret, valid for `ttl` (at most MAX_LOGIN_TTL); only its digest is kept.

    Anyone may ask for a link to be minted (the chat opens the console this way): the secret goes to
    the operator's browser or terminal, never back to the caller, and it opens the console only once.
    """
    if not timedelta(0) < ttl <= MAX_LOGIN_TTL:
        raise InvalidInput(
            f"ttl: a login link lives from a second to {int(MAX_LOGIN_TTL.total_seconds() // 60)} minutes."
        )
    landing = check_page(page)
    secret = LOGIN_PREFIX + secrets.token_urlsafe(32)
    expires_at = format_ts(tx.now + ttl)
    number = await tx.run(
        "INSERT INTO console_logins (digest, page, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (digest(secret), landing, tx.now_text, expires_at),
    )
    await audit.append(tx, actor, "console.link", _link_label(number), {"expires_at": expires_at, "page": landing})
    return secret


def _well_formed(secret: object, prefix: str) -> bool:
    return isinstance(secret, str) and secret.startswith(prefix) and len(secret) <= _LONGEST_SECRET


async def redeem_login(tx: Tx, secret: str) -> Opened:
    """Exchange a login link's secret for a new session, once: a used, expired or unknown link is refused."""
    row = None
    if _well_formed(secret, LOGIN_PREFIX):
        # A compare-and-set: of two redeems of the same link at once, exactly one opens a session.
        row = await tx.one(
            "UPDATE console_logins SET used_at = ? WHERE digest = ? AND used_at IS NULL AND expires_at > ? "
            "RETURNING id, page",
            (tx.now_text, digest(secret), tx.now_text),
        )
    if row is None:
        raise AccessRefused(await _why_not(tx, secret))
    session_secret, csrf = SESSION_PREFIX + secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = format_ts(tx.now + SESSION_TTL)
    number = await tx.run(
        "INSERT INTO console_sessions (login_id, digest, csrf, created_at, expires_at, last_seen_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (row["id"], digest(session_secret), csrf, tx.now_text, expires_at, tx.now_text),
    )
    session = ConsoleSession(number, csrf, tx.now_text, expires_at, tx.now_text)
    await audit.append(
        tx, session.actor, "console.login", session.label, {"link": _link_label(row["id"]), "expires_at": expires_at}
    )
    return Opened(session, session_secret, row["page"])


async def _why_not(tx: Tx, secret: str) -> str:
    found = None
    if _well_formed(secret, LOGIN_PREFIX):
        found = await tx.one("SELECT used_at, expires_at FROM console_logins WHERE digest = ?", (digest(secret),))
    if found is None:
        return f"This is not a login link of this workspace. {AGAIN}"
    if found["used_at"] is not None:
        return f"This login link was already used, at {found['used_at']}; a link opens the console once. {AGAIN}"
    return f"This login link expired at {found['expires_at']}; links last a few minutes. {AGAIN}"


async def session_of(tx: Tx, secret: str) -> ConsoleSession:
    """The live session whose secret this is; AccessRefused (saying how to log in again) for any other."""
    row = None
    if _well_formed(secret, SESSION_PREFIX):
        row = await tx.one("SELECT * FROM console_sessions WHERE digest = ?", (digest(secret),))
    if row is None:
        raise AccessRefused(f"You are not logged in to this console. {AGAIN}")
    problem = _ended(row, tx.now)
    if problem is not None:
        raise AccessRefused(f"This console session {problem}. {AGAIN}")
    return ConsoleSession(row["id"], row["csrf"], row["created_at"], row["expires_at"], row["last_seen_at"])


def _ended(row: Row, now: datetime) -> str | None:
    if row["ended_at"] is not None:
        return f"was logged out at {row['ended_at']}"
    if row["expires_at"] <= format_ts(now):
        return f"ended at {row['expires_at']}"
    idle_until = parse_ts(row["last_seen_at"]) + IDLE_TIMEOUT
    if idle_until <= now:
        return f"ended at {format_ts(idle_until)}, after {int(IDLE_TIMEOUT.total_seconds() // 3600)} hours unused"
    return None


def seen_is_stale(session: ConsoleSession, now: datetime) -> bool:
    """Whether the session's recorded last request is old enough to write again (so most requests only read)."""
    return now - parse_ts(session.last_seen_at) >= SEEN_RESOLUTION


async def mark_seen(tx: Tx, session: ConsoleSession) -> None:
    """Record that the session was just used, so it does not end as idle while the operator works."""
    await tx.run(
        "UPDATE console_sessions SET last_seen_at = ? WHERE id = ? AND ended_at IS NULL", (tx.now_text, session.id)
    )


async def end_session(tx: Tx, session: ConsoleSession) -> None:
    """Log a session out: its cookie opens nothing from now on."""
    changed = await tx.run(
        "UPDATE console_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (tx.now_text, session.id)
    )
    if changed:
        await audit.append(tx, session.actor, "console.logout", session.label)
