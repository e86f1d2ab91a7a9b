"""Targets in one spelling: what a scope pattern sees is the canonical form of one recipient.

Pure: no storage. A deny pattern is only as strong as the matching behind it, so a
request's target is brought to one spelling before any pattern sees it (design brief,
Trust, property 5), and patterns are read the same way. The canonical form:

- Unicode NFKC (fullwidth letters become ASCII), surrounding whitespace trimmed, then
  lower case; the ideographic full stop is a dot, as IDNA reads it.
- A URL (`scheme://host/...`, or `host/...` without a scheme) keeps its path; its scheme and
  host are canonical and it carries no user name. An email address may come wrapped in a display name
  (`Jane <jane@acme.com>`) or as `mailto:`; it comes out as the bare address.
- A domain (bare, an email's or a URL's) loses its trailing dots and is IDNA-encoded, so
  `bücher.de` and `xn--bcher-kva.de` are one domain.
- Anything else without a dot (a list name such as `newsletter-q4`) stays text, with its
  inner whitespace collapsed.

Refused, with a message saying what to send: several recipients in one target (commas,
semicolons, line breaks, more than one `@`), control, zero-width, bidirectional and other
invisible characters, and anything read two ways (a display name the standard library
parses differently, a dotted target that is neither a domain, an address nor a URL).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from email.utils import parseaddr
from encodings import idna
from urllib.parse import urlsplit

from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import first_unseen, is_unseen

# The longest target a request may name, before and after canonicalisation (NFKC can lengthen text).
MAX_TARGET_LENGTH = 500

_LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
# Characters that separate recipients in lists people paste: line breaks, and commas and semicolons
# in any script that NFKC leaves apart.
_SEPARATORS = frozenset(_LINE_BREAKS + ",;\u060c\u061b\u3001\u2e41\u2e4c\u2e4d\u204f\ufe50\ufe51\ufe54")
# The dots IDNA reads as label separators; NFKC already folds the fullwidth and halfwidth ones into these.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# A scheme and its colon at the start of a target that has no "://" after it.
_SCHEME_PREFIX = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
_LOCAL_PART = re.compile(r'^[^\s"(),:;<>@\[\\\]]+$')
_PATH_START = re.compile(r"[/?#]")
_DISPLAY_FORM = re.compile(r"^(?P<name>[^<>]*)<(?P<address>[^<>]*)>$")

_ONE_PER_RECIPIENT = "ask once per recipient, with one target each time"
_KINDS = "a domain (acme.com), an email address (jane@acme.com), a URL (https://acme.com/x) or a name without dots"


def canonical_target(value: str) -> str:
    """The one spelling of a request's target that patterns are matched against; InvalidInput if it has none."""
    if not isinstance(value, str):
        raise InvalidInput(f"target: send the target as text, not {type(value).__name__}.")
    text = unicodedata.normalize("NFKC", value).translate(_DOTS).strip()
    if not text:
        raise InvalidInput("target: is empty; send the one target you will act on, or leave target out.")
    _refuse_several(text)
    _refuse_invisible(text)
    if len(text) > MAX_TARGET_LENGTH:
        raise InvalidInput(f"target: send at most {MAX_TARGET_LENGTH} characters, naming one target.")
    canonical = _canonical_text(text)
    if len(canonical) > MAX_TARGET_LENGTH:
        raise InvalidInput(f"target: send at most {MAX_TARGET_LENGTH} characters, naming one target.")
    return canonical


def canonical_pattern(pattern: str) -> str:
    """A scope pattern read as targets are: `*.GOV.` is `*.gov`, `*@bücher.de` is `*@xn--bcher-kva.de`.

    Never raises: a pattern is the operator's, and the globs (* and ?) stay. Invisible characters
    are dropped rather than kept, so they cannot make a deny pattern miss.
    """
    text = unicodedata.normalize("NFKC", pattern).translate(_DOTS)
    text = " ".join("".join(ch for ch in text if not is_unseen(ch)).lower().split())
    if "://" in text:
        scheme, _, rest = text.partition("://")
        host, slash, path = rest.partition("/")
        return f"{scheme}://{_pattern_domain(host)}{slash}{path}"
    local, at, domain = text.rpartition("@")
    return f"{local}{at}{_pattern_domain(domain)}"


def _pattern_domain(text: str) -> str:
    """Each glob-free label IDNA-encoded where it can be; trailing dots gone."""
    labels = text.rstrip(".").split(".")
    return ".".join(label if "*" in label or "?" in label else _ascii_label(label) for label in labels)


def _ascii_label(label: str) -> str:
    if label.isascii():
        return label
    try:
        return idna.ToASCII(label).decode("ascii").lower()
    except UnicodeError:
        return label


def _refuse_several(text: str) -> None:
    separator = next((ch for ch in text if ch in _SEPARATORS), None)
    if separator is not None:
        shown = "a line break" if separator in _LINE_BREAKS else repr(separator)
        raise InvalidInput(f"target: holds {shown}, which separates several recipients; {_ONE_PER_RECIPIENT}.")
    if text.count("@") > 1:
        raise InvalidInput(f"target: holds more than one '@', so more than one address; {_ONE_PER_RECIPIENT}.")


def _refuse_invisible(text: str) -> None:
    bad = first_unseen(text)
    if bad is not None:
        raise InvalidInput(
            f"target: holds the invisible or control character U+{ord(bad):04X}; send the target as plain "
            "visible text, without zero-width, direction or control characters."
        )


def _canonical_text(text: str) -> str:
    if "://" in text:
        return _canonical_url(text)
    if "<" in text or ">" in text:
        return _canonical_email(_address_of_display_form(text))
    if text.lower().startswith("mailto:"):
        return _canonical_email(text[len("mailto:") :].strip())
    if _SCHEME_PREFIX.match(text) and "." in text:
        # https:/evil.com or http:\evil.com: browsers open these as URLs, so no pattern may read them as a name.
        raise InvalidInput(f"target: {text!r} is not one URL; send it as scheme://host/path (https://acme.com/x).")
    if "@" in text:
        return _canonical_email(text)
    head = _PATH_START.split(text, maxsplit=1)[0]
    if "." in head:  # a domain, or a URL without its scheme (acme.com/pricing)
        return _canonical_domain(head, "target") + _path(text[len(head) :], text)
    if "." in text and not head:  # //acme.com/x, /acme.com: a host with nothing before it
        raise InvalidInput(f"target: {text!r} is not one target; send {_KINDS}.")
    return " ".join(text.lower().split())


def _path(rest: str, text: str) -> str:
    """What follows a schemeless URL's host (acme.com/pricing), kept as sent."""
    if any(ch.isspace() for ch in rest):
        raise InvalidInput(f"target: {text!r} holds spaces after its host; send one URL without spaces.")
    return rest


def _canonical_url(text: str) -> str:
    scheme = text.partition("://")[0].lower()
    if not _SCHEME.match(scheme) or any(ch.isspace() for ch in text):
        raise InvalidInput(
            f"target: {text!r} is not one URL; send it as scheme://host/path (https://acme.com/x), without spaces."
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidInput(
            f"target: {text!r} has a host or port that cannot be read; send a URL such as https://acme.com:8443/x."
        ) from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput(
            "target: the URL carries a user name before '@'; send the URL without it (https://host/path)."
        )
    if not parts.hostname:
        raise InvalidInput(f"target: {text!r} names no host; send a URL with one, such as https://acme.com/x.")
    host = _canonical_host(parts.hostname)
    netloc = host if port is None else f"{host}:{port}"
    rest = text.partition("://")[2][len(parts.netloc) :]
    return f"{scheme}://{netloc}{rest}"


def _canonical_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _canonical_domain(host, "target: the URL's host")
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _address_of_display_form(text: str) -> str:
    """The address in `Name <address>`, when the standard library reads the same address out of it."""
    match = _DISPLAY_FORM.match(text)
    address = match["address"].strip() if match else ""
    if not address or parseaddr(text)[1] != address or text.count('"') % 2:
        raise InvalidInput(
            f"target: {text!r} cannot be read as one address; send the bare email address, such as jane@acme.com."
        )
    return address


def _canonical_email(text: str) -> str:
    local, _, domain = text.partition("@")
    if not local or not domain or not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith("."):
        raise InvalidInput(
            f"target: {text!r} is not one email address; send it as name@domain (jane@acme.com), "
            "without quotes, spaces or brackets."
        )
    return f"{local.lower()}@{_canonical_domain(domain, 'target: the address')}"


def _canonical_domain(text: str, label: str) -> str:
    """IDNA's ASCII form of a domain, lower case, without trailing dots."""
    name = text.rstrip(".")
    try:
        encoded = name.encode("idna").decode("ascii").lower() if name else ""
    except UnicodeError:
        encoded = ""
    if not _HOSTNAME.match(encoded):
        raise InvalidInput(f"{label}: {text!r} is not a domain; send {_KINDS}.")
    return encoded
