"""Errors a model or a person can act on.

Every message says what was wrong and what to send or do instead. The server
turns these into tool errors verbatim, so they must never carry a stack trace,
a file path or a secret.

    ChiefOfStaffError
    ├── InvalidInput        a value is malformed or out of range
    ├── NotFound            an id or name does not exist
    ├── Conflict            the thing exists but its state forbids the change
    ├── OperatorActRefused  an operator-only act came through a channel that may not make it
    ├── WorkspaceSealed     the audit tail or the append-only triggers do not hold: no writes until repaired
    ├── AccessRefused       a console login link or session is unknown, used, expired or ended: log in again
    └── Unavailable         this server cannot do it where it runs (open a browser): the message says where to
"""

from __future__ import annotations


class ChiefOfStaffError(Exception):
    """Base class: the message is written for the caller to act on."""


class InvalidInput(ChiefOfStaffError):
    """A value is malformed or out of range; nothing was written."""


class NotFound(ChiefOfStaffError):
    """An id or name does not exist; nothing was written."""


class Conflict(ChiefOfStaffError):
    """The target exists, but its current state forbids the change."""


class OperatorActRefused(ChiefOfStaffError):
    """An operator-only act came through a channel that is not allowed to make it."""


class WorkspaceSealed(ChiefOfStaffError):
    """The workspace's audit log ends before its anchor, or an append-only trigger is gone.

    Reads still work; every write is refused until the operator runs `chief-of-staff audit repair`.
    """


class AccessRefused(ChiefOfStaffError):
    """A console login link or session does not let this request in; nothing was changed.

    The message says why (not a link of this workspace, used, expired, logged out) and how to get a fresh link.
    """


class Unavailable(ChiefOfStaffError):
    """What was asked cannot be done where this server runs (no browser to open here); the message says where."""
