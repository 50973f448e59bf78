"""A sink's address: ``sqlite:///path/file.db`` or ``postgresql://user@host:port/db``.

The URL is parsed once, at the edge. Everything a user may see carries ``redacted`` (the
password replaced by ``***``), and every message that came from a driver passes through
``DatabaseUrl.scrub`` before it is shown, since a driver may echo the connection string
back (libpq does, for some malformed ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from fastgen.errors import UsageError

SCHEMES = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}
HIDDEN = "***"


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed sink URL; ``str()`` is the redacted form."""

    kind: str  # "sqlite" or "postgres"
    redacted: str
    conninfo: str = field(repr=False)  # what the driver gets: the URL as given (may hold a password)
    path: Path | None = None  # the SQLite file
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return self.redacted

    def scrub(self, text: str) -> str:
        """``text`` without this URL's password (as typed and percent-decoded) or whole form."""
        text = text.replace(self.conninfo, self.redacted)
        for secret in self.secrets:
            text = text.replace(secret, HIDDEN)
        return text


def parse(text: str) -> DatabaseUrl:
    """Parse a sink URL; UsageError (its redacted form named) for one fastgen cannot use."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError as exc:  # a bad port or bracket: say so without echoing the text
        raise UsageError(f"the database URL is malformed ({exc}); expected "
                         "sqlite:///path/file.db or postgresql://user@host:port/db.") from None
    given = [password or ""] + [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    secrets = tuple(sorted({s for p in given for s in (p, unquote(p)) if s}, key=len,
                           reverse=True))
    redacted = _redact(text, parts) if secrets or password is not None else text
    kind = SCHEMES.get(parts.scheme.lower())
    if kind is None:
        shown = parts.scheme or redacted
        raise UsageError(f"unknown database URL scheme {shown!r} in {redacted}; use "
                         "sqlite:///path/file.db or postgresql://user@host:port/db.")
    if kind == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise UsageError(f"{redacted} is not a SQLite URL of a file; write "
                             "sqlite:///relative/file.db or sqlite:////absolute/file.db.")
        path = Path(unquote(parts.path[1:]))  # sqlite:///x.db is x.db, sqlite:////x.db is /x.db
        return DatabaseUrl("sqlite", redacted, text, path, secrets)
    if not parts.path.strip("/"):
        raise UsageError(f"{redacted} names no database; write postgresql://user@host:port/db.")
    return DatabaseUrl("postgres", redacted, text, None, secrets)


def _redact(text: str, parts) -> str:
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{user}:{HIDDEN}@{host}"
    out = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    # A password may also be given as a query parameter (libpq's ?password=...).
    return re.sub(r"(?i)(password=)[^&]*", rf"\1{HIDDEN}", out)
