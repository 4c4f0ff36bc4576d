"""Secrets out of log lines (pure).

Applied to each formatted line, whatever produced it (our messages, extra fields, a library's
message, an exception's traceback), in two ways:

- the configured secrets themselves (JWT secret, SMTP password, ops token, ingest key
  secrets, the database URL's password), wherever they appear, raw or JSON-escaped;
- by shape, for secrets the process does not know in advance (a subscription's webhook
  secret in a repr or a dict, a bearer token, the password in any URL): the value after a
  key named like `secret`, `password`, `api_key` or `token`, the token after `Bearer`, and
  the password of `scheme://user:password@host`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson

MASK = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words and numbers

_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\"'\\]*:)([^\s@/\"'\\]+)@")
_BEARER = re.compile(r"(\b(?:[Bb]earer|[Bb]asic)\s+)([A-Za-z0-9._~+/=-]+)")
# The key ends in secret, password, passwd, api_key or token (`webhook_secret`, `smtp_password`,
# `access_token`; not `token_id`: the word must end there), then a separator (`=`, `: `,
# `": "`, with JSON-escaped quotes), then the value. The match starts at the keyword, so the
# scan stays linear on long lines.
_KEYED = re.compile(
    r"""(?ix)
    (secret|password|passwd|api[_-]?key|token)\b
    ((?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)
    ([^\s"'\\,;&)}\]]+)
    """
)


def _escaped(secret: str) -> str:
    """How `secret` appears inside a JSON string."""
    return orjson.dumps(secret).decode()[1:-1]


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
        forms = known | {_escaped(s) for s in known}
        # Longest first: a secret that contains another is masked whole.
        self._literals = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._literals:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
        if "earer " in text or "asic " in text:
            text = _BEARER.sub(rf"\g<1>{MASK}", text)
        # A line without these words cannot hold a keyed secret: most lines skip the regex
        # (plain `in` tests, a few hundred ns on a long line; the regex costs far more).
        lower = text.lower()
        if "secret" in lower or "passw" in lower or "token" in lower or "api" in lower:
            text = _KEYED.sub(_mask_value, text)
        return text


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(3)
    if value == MASK or value.lower() in ("none", "null"):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"


def url_password(url: str | None) -> str | None:
    """The password in a URL (a database URL), None if it has none."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None
