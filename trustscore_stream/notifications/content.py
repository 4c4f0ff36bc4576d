"""Notification content: title, body and recommended action per kind, severity and locale.

`render(kind, severity, entity, facts, locale)` turns the facts of one significant change
(`significance.Signal.facts`, CONTRACT §5 kinds) into a `Content`; `render_digest` sums up a
group of low-severity items in one. Pure: facts in, text out, no clock and no network.

- Wording lives in Jinja2 templates (`templates/<kind>.txt`, shared pieces in
  `templates/_common.txt`), each setting `title`, `body` and `action` at top level, read
  through `Template.make_module`.
- Translations use Jinja2's i18n extension with new-style gettext (`_("… %(x)s", x=…)`);
  `locales/<lang>/LC_MESSAGES/messages.po` is read and compiled in memory on a locale's first
  use (no build step), then cached. English is the source language and needs no catalog.
- Numbers, percentages, money and durations are formatted by Babel for the reader's locale.
- Every string that comes from outside (evidence, finding names, factor ids, event ids,
  malformed entity ids) is a value, never template source; it is cleaned (one line, no
  control or bidi characters, length-limited) and template-looking openings ("{{", "{%",
  "{#") are broken up in the output, so nothing downstream can mistake it for a template.
"""

from __future__ import annotations

import gettext
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from io import BytesIO
from typing import IO, Final

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_timedelta
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_plus_sign_symbol,
    is_currency,
)
from babel.support import Translations

from trustscore_stream.events.ids import InvalidEntityId, parse_entity_id
from trustscore_stream.notifications.significance import SEVERITIES
from trustscore_stream.scoring.model import level_for

__all__ = [
    "KINDS",
    "SEVERITIES",
    "SUPPORTED_LOCALES",
    "Content",
    "compile_po",
    "describe_entity",
    "render",
    "render_digest",
    "resolve_locale",
]

KINDS: Final = (
    "score_threshold",
    "score_change",
    "trend_reversal",
    "anomaly",
    "fraud_finding",
    "price_movement",
    "risk_level_change",
    "market_condition",
)
SUPPORTED_LOCALES: Final = ("en", "de", "es")
DEFAULT_LOCALE: Final = "en"

# A title is also an e-mail subject and a push headline: short enough for both.
MAX_TITLE: Final = 120
# Evidence explains, it does not reproduce a report: a push body must stay readable.
MAX_EVIDENCE: Final = 300
MAX_EVIDENCE_LINES: Final = 5
MAX_LABEL: Final = 60  # finding names, factor ids, an unparseable entity
MAX_EVENT_ID: Final = 100
MAX_FACTORS: Final = 8
# pacing.Rules.digest_max keeps 50 items; a digest lists them all and counts the rest.
MAX_DIGEST_LINES: Final = 50

_PACKAGE: Final = __name__.rpartition(".")[0]
# A Traversable, not a path, so the catalogs load from a wheel or a zip import alike.
_LOCALES_ROOT: Traversable = files(_PACKAGE).joinpath("locales")


@dataclass(frozen=True, slots=True)
class Content:
    title: str  # doubles as the e-mail subject
    body: str
    action: str


def N_(message: str) -> str:
    """Marks a string for extraction; it is translated where it is used."""
    return message


# Labels translated in Python (templates get them ready-made). Unknown ids are shown cleaned.
_LEVELS: Final = {
    "high_trust": N_("high trust"),
    "moderate": N_("moderate"),
    "caution": N_("caution"),
    "high_risk": N_("high risk"),
}
# Worst to best (CONTRACT §3), to tell a worsening from an improvement.
_LEVEL_ORDER: Final = ("high_risk", "caution", "moderate", "high_trust")
_SEVERITY_LABELS: Final = {
    "low": N_("low"),
    "medium": N_("medium"),
    "high": N_("high"),
    "critical": N_("critical"),
}
_FINDINGS: Final = {
    "wash_trading": N_("wash trading"),
    "stolen": N_("stolen asset"),
    "phishing": N_("phishing"),
    "counterfeit": N_("counterfeit"),
    "rug_pull": N_("rug pull"),
    "sanctioned": N_("sanctioned address"),
    "other": N_("other fraud"),
    # significance.py's name for a factor's own severe evidence line.
    "severe_evidence": N_("severe risk evidence"),
}
_FACTORS: Final = {
    "market_integrity": N_("market integrity"),
    "provenance": N_("provenance"),
    "fraud_risk": N_("fraud risk"),
    "creator_reputation": N_("creator reputation"),
    "collection_health": N_("collection health"),
    "liquidity": N_("liquidity"),
    "social_sentiment": N_("social sentiment"),
    "metadata_stability": N_("metadata stability"),
}
_NFT_LABEL: Final = N_("NFT #%(token)s of %(contract)s")
_COLLECTION_LABEL: Final = N_("collection %(contract)s")
_WALLET_LABEL: Final = N_("wallet %(address)s")
_ON_CHAIN: Final = N_("%(label)s on %(chain)s")


# Cleaning outside text --------------------------------------------------------------------

# Bidi embeddings, overrides and isolates can make a text display as something else.
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEMPLATE_OPENING: Final = re.compile(r"\{(?=[{%#])")
_SPACES: Final = re.compile(r"[ \t]+")
_PLACEHOLDER: Final = re.compile(r"%\((\w+)\)")


def _defuse(text: str) -> str:
    """'{{' → '{ {' (likewise '{%', '{#'): no template syntax in anything we hand on."""
    return _TEMPLATE_OPENING.sub("{ ", text)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _clean(value: object, limit: int) -> str:
    """Outside text as one short, printable line."""
    raw = str(value)[: limit * 4]  # bounds the work on a huge value; the clip comes last
    out: list[str] = []
    for ch in raw:
        if ch in _BIDI:
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):
            out.append(" ")  # newlines and tabs would break the one-line layout
        elif category == "Cs":
            out.append("\ufffd")  # a lone surrogate cannot be encoded into an e-mail or JSON
        else:
            out.append(ch)
    return _clip(_defuse(" ".join("".join(out).split())), limit)


# Locales and catalogs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedLocale:
    language: str  # one of SUPPORTED_LOCALES: the catalog
    babel: str  # the Babel locale for numbers (e.g. de_CH keeps Swiss separators)


@lru_cache(maxsize=64)  # bounded: the locale is caller input
def resolve_locale(locale: str | None) -> ResolvedLocale:
    """'de-DE', 'de_DE', 'DE' → German; anything unsupported or malformed → English."""
    tag = (locale or "").strip().replace("-", "_")
    language = tag.split("_", 1)[0].lower()
    if language not in SUPPORTED_LOCALES:
        return ResolvedLocale(DEFAULT_LOCALE, DEFAULT_LOCALE)
    try:
        parsed = Locale.parse(tag)
    except (ValueError, TypeError, UnknownLocaleError):
        return ResolvedLocale(language, language)
    return ResolvedLocale(language, str(parsed) if parsed.language == language else language)


def _formats_cleanly(text: str, names: set[str]) -> bool:
    try:
        text % dict.fromkeys(names, "")
    except (KeyError, ValueError, TypeError):
        return False
    return True


def _usable(msgid: str | Sequence[str], msgstr: str | Sequence[str] | None) -> bool:
    """A translation that is complete and formats with the source's placeholders only."""
    ids = (msgid,) if isinstance(msgid, str) else tuple(msgid)
    strs = (msgstr,) if isinstance(msgstr, str) else tuple(msgstr or ())
    names = {name for text in ids for name in _PLACEHOLDER.findall(text)}
    if not strs or not all(strs):
        return False
    return all(_formats_cleanly(s, names) for s in strs)


def compile_po(fileobj: IO[bytes], locale: str) -> Translations:
    """A .po file compiled in memory. Entries that are untranslated, fuzzy, or whose
    placeholders do not match the source are dropped, so they fall back to English instead of
    printing nothing or failing at render time."""
    catalog: Catalog = read_po(fileobj, locale=locale)
    for message in list(catalog)[1:]:  # [0] is the header
        if message.fuzzy or not _usable(message.id, message.string):
            catalog.delete(message.id, context=message.context)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain="messages")


@lru_cache(maxsize=len(SUPPORTED_LOCALES))
def _translations(language: str) -> gettext.NullTranslations:
    if language == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    po = _LOCALES_ROOT.joinpath(language, "LC_MESSAGES", "messages.po")
    if not po.is_file():
        return gettext.NullTranslations()  # a missing catalog degrades to English
    with po.open("rb") as fp:
        return compile_po(fp, language)


_LOADER: Final = jinja2.PackageLoader(_PACKAGE, "templates")


@lru_cache(maxsize=len(SUPPORTED_LOCALES))
def _environment(language: str) -> jinja2.Environment:
    # One environment per language: install_gettext_translations binds the catalog to it.
    env = jinja2.Environment(
        loader=_LOADER,
        extensions=["jinja2.ext.i18n"],
        autoescape=False,  # plain text; values are cleaned instead
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails the tests, not a reader
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.policies["ext.i18n.trimmed"] = True
    # Added by the i18n extension at runtime, so invisible to the type checker.
    env.install_gettext_translations(  # type: ignore[attr-defined]
        _translations(language), newstyle=True
    )
    return env


# Formatting -------------------------------------------------------------------------------


def _exact(value: float, places: int) -> Decimal:
    """`value` rounded, as an exact decimal: Babel then prints no binary-float tail."""
    rounded = Decimal(repr(round(value, places)))
    return rounded if rounded != 0 else Decimal(0)  # no "-0"


@lru_cache(maxsize=64)
def _babel_locale(tag: str) -> Locale:
    # Parsed once: Babel would otherwise parse a locale string on every number it formats.
    return Locale.parse(tag)


@dataclass(frozen=True, slots=True)
class _Formatter:
    locale: Locale
    currency: str

    def number(self, value: float, places: int = 1) -> str:
        return format_decimal(_exact(value, places), locale=self.locale, decimal_quantization=False)

    def signed(self, value: float, places: int = 1) -> str:
        text = self.number(value, places)
        return get_plus_sign_symbol(self.locale) + text if _exact(value, places) > 0 else text

    def percent(self, value_pct: float, places: int = 1, signed: bool = False) -> str:
        """`value_pct` is in percent (12.5 → "12.5%"; "12,5 %" in German)."""
        fraction = _exact(value_pct, places) / 100
        text = format_percent(fraction, locale=self.locale, decimal_quantization=False)
        return get_plus_sign_symbol(self.locale) + text if signed and fraction > 0 else text

    def money(self, amount: float) -> str:
        if is_currency(self.currency):
            return format_currency(amount, self.currency, locale=self.locale)
        # Babel knows no crypto currency: it would glue the code to a 2-decimal number
        # ("ETH0.00"). Crypto amounts read "0.0345 ETH": amount, then code, up to 6 decimals.
        return format_currency(
            _exact(amount, 6),
            self.currency,
            format="#,##0.00####\u00a0¤",
            locale=self.locale,
            currency_digits=False,
        )

    def duration(self, seconds: float) -> str:
        return format_timedelta(timedelta(seconds=seconds), format="long", locale=self.locale)


_CURRENCY: Final = re.compile(r"[A-Z][A-Z0-9]{1,9}")


def _currency(code: str) -> str:
    value = code.strip().upper()
    if not _CURRENCY.fullmatch(value):
        raise ValueError(f"invalid currency code {code!r}")
    return value


# Facts ------------------------------------------------------------------------------------

Facts = Mapping[str, float | str | None]


# Beyond any score, price or rate; Babel's 28-digit decimals would fail on far larger ones.
_MAX_MAGNITUDE: Final = 1e15


def _number(facts: Facts, key: str) -> float | None:
    """A usable number, or None: missing, empty, unparsable, NaN, ±inf and absurdly large
    values all mean unknown."""
    value = facts.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return _sane(number)


def _sane(number: float | None) -> float | None:
    if number is None or not math.isfinite(number) or abs(number) >= _MAX_MAGNITUDE:
        return None
    return number


def _text(facts: Facts, key: str, limit: int) -> str | None:
    value = facts.get(key)
    if value is None:
        return None
    return _clean(value, limit) or None


def _key(value: str | None) -> str | None:
    """An id-like fact (level, finding) normalised for lookup."""
    if value is None:
        return None
    return value.strip().lower().replace(" ", "_").replace("-", "_") or None


def _label(table: Mapping[str, str], key: str | None, tr: gettext.NullTranslations) -> str | None:
    if key is None:
        return None
    known = table.get(key)
    if known is not None:
        return tr.gettext(known)
    return _clean(key.replace("_", " "), MAX_LABEL) or None


def _shorten(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _token(token_id: str) -> str:
    # ENS-style token ids run to 78 digits: keep both ends, like an address.
    return token_id if len(token_id) <= 12 else f"{token_id[:6]}…{token_id[-4:]}"


def describe_entity(entity: str, locale: str = DEFAULT_LOCALE) -> str:
    """A CONTRACT §1 id as a reader would say it: 'NFT #4021 of 0x5af0…25a5'."""
    tr = _translations(resolve_locale(locale).language)
    try:
        parsed = parse_entity_id(entity)
    except InvalidEntityId:
        return _clean(entity, MAX_LABEL) or "?"
    address = _shorten(parsed.address)
    if parsed.kind == "nft":
        label = tr.gettext(_NFT_LABEL) % {
            "token": _token(parsed.token_id or ""),
            "contract": address,
        }
    elif parsed.kind == "collection":
        label = tr.gettext(_COLLECTION_LABEL) % {"contract": address}
    else:
        label = tr.gettext(_WALLET_LABEL) % {"address": address}
    if parsed.chain != "eth":
        label = tr.gettext(_ON_CHAIN) % {"label": label, "chain": parsed.chain}
    return label


def _entity_kind(entity: str) -> str:
    try:
        return parse_entity_id(entity).kind
    except InvalidEntityId:
        return "other"


def _direction(given: str | None, change: float | None) -> str | None:
    """'up' (better), 'down' (worse) or None (unknown)."""
    if given in ("up", "better"):
        return "up"
    if given in ("down", "worse"):
        return "down"
    if change is None or change == 0:
        return None
    return "up" if change > 0 else "down"


def _evidence_lines(facts: Facts) -> list[str]:
    raw = facts.get("evidence")
    if raw is None:
        return []
    # Cut the whole text first, so the limit holds however the items split.
    text = _clean(raw, MAX_EVIDENCE)
    lines = [line.strip() for line in text.split("; ")]
    return [line for line in lines if line][:MAX_EVIDENCE_LINES]


def _factor_list(facts: Facts, tr: gettext.NullTranslations, locale: Locale) -> str | None:
    raw = facts.get("factors")
    if raw is None:
        return None
    names: list[str] = []
    for part in str(raw)[: MAX_FACTORS * MAX_LABEL].split(","):
        name = _label(_FACTORS, _key(part), tr)
        if name and name not in names:
            names.append(name)
    if not names:
        return None
    shown = names[:MAX_FACTORS]
    return _clean(format_list(shown, locale=locale), MAX_FACTORS * MAX_LABEL)


def _context(
    kind: str,
    severity: str,
    entity: str,
    facts: Facts,
    where: ResolvedLocale,
    currency: str,
) -> dict[str, object]:
    tr = _translations(where.language)
    fmt = _Formatter(_babel_locale(where.babel), currency)

    def num(value: float | None, places: int = 1) -> str | None:
        return None if value is None else fmt.number(value, places)

    score, previous = _number(facts, "score"), _number(facts, "previous")
    # score_change measures from its window's extreme (`base`), not from the last score seen.
    start = _number(facts, "base") if kind == "score_change" else None
    start = previous if start is None else start
    delta = _number(facts, "delta")
    if delta is None:
        delta = _number(facts, "change")  # significance.py's anomaly names the delta `change`
    if delta is None and score is not None and start is not None:
        delta = _sane(score - start)
    change_pct = _number(facts, "change_pct")
    floor, previous_floor = _number(facts, "floor"), _number(facts, "previous_floor")
    if change_pct is None and kind in ("price_movement", "market_condition"):
        if floor is not None and previous_floor:
            change_pct = _sane((floor - previous_floor) / previous_floor * 100.0)
    elif change_pct is None and delta is not None and start:
        change_pct = _sane(delta / start * 100.0)
    slope, z = _number(facts, "slope"), _number(facts, "z")
    threshold = _number(facts, "threshold")
    window = _number(facts, "since_s")
    window = _number(facts, "window_s") if window is None else window
    confidence = _number(facts, "confidence")

    level_key = _key(_text(facts, "level", MAX_LABEL))
    if level_key is None and score is not None:
        level_key = level_for(min(max(score, 0.0), 100.0))
    previous_level_key = _key(_text(facts, "previous_level", MAX_LABEL))
    finding_key = _key(_text(facts, "finding", MAX_LABEL))
    finding_severity_key = _key(_text(facts, "finding_severity", MAX_LABEL))

    given = _key(_text(facts, "direction", MAX_LABEL))
    if (
        kind == "risk_level_change"
        and given is None
        and level_key in _LEVEL_ORDER
        and previous_level_key in _LEVEL_ORDER
    ):
        rank = _LEVEL_ORDER.index(level_key) - _LEVEL_ORDER.index(previous_level_key)
        given = "up" if rank > 0 else "down" if rank < 0 else None
    if kind == "trend_reversal":
        moved = slope
    elif kind in ("price_movement", "market_condition"):
        moved = change_pct
    elif kind == "score_threshold" and score is not None and threshold is not None:
        moved = score - threshold  # below the line is the news, whatever came before
    else:
        moved = delta
    direction = _direction(given, moved)

    return {
        "kind": kind,
        "severity": severity,
        "entity": describe_entity(entity, where.language),
        "entity_kind": _entity_kind(entity),
        "direction": direction,
        "score": num(score),
        "previous": num(start),
        "delta": None if delta is None else fmt.signed(delta),
        "delta_abs": None if delta is None else fmt.number(abs(delta)),
        "change": None if change_pct is None else fmt.percent(change_pct, signed=True),
        "change_abs": None if change_pct is None else fmt.percent(abs(change_pct)),
        "threshold": num(threshold),
        "slope": None if slope is None else fmt.signed(slope),
        "slope_abs": None if slope is None else fmt.number(abs(slope)),
        "z": None if z is None else fmt.number(abs(z)),
        "window": fmt.duration(abs(window)) if window and abs(window) < 1e12 else None,
        "floor": None if floor is None else fmt.money(floor),
        "previous_floor": None if previous_floor is None else fmt.money(previous_floor),
        "level_key": level_key,
        "level": _label(_LEVELS, level_key, tr),
        "previous_level": _label(_LEVELS, previous_level_key, tr),
        "finding_key": finding_key,
        "finding": _label(_FINDINGS, finding_key, tr),
        "finding_severity_key": finding_severity_key,
        "finding_severity": _label(_SEVERITY_LABELS, finding_severity_key, tr),
        "confidence": (
            None
            if confidence is None
            else fmt.percent(min(max(confidence, 0.0), 1.0) * 100.0, places=0)
        ),
        "evidence": _evidence_lines(facts),
        "factors": _factor_list(facts, tr, fmt.locale),
        "cause_event_id": _text(facts, "cause_event_id", MAX_EVENT_ID),
    }


# Rendering --------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    return _clip(_defuse(" ".join(_SPACES.sub(" ", text).split("\n")).strip()), limit)


def _paragraphs(text: str) -> str:
    """Template output tidied: lines stripped, at most one blank line between paragraphs."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = _SPACES.sub(" ", raw).strip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return _defuse("\n".join(lines).strip())


def _check(kind: str, severity: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")


_PARTS: Final = ("title", "body", "action")


def _render_template(name: str, language: str, context: Mapping[str, object]) -> Content:
    module = _environment(language).get_template(name).make_module(dict(context))
    # A template exports its top-level `{% set %}`s; missing one is an AttributeError.
    title, body, action = (str(getattr(module, part)) for part in _PARTS)
    return Content(
        title=_one_line(title, MAX_TITLE),
        body=_paragraphs(body),
        action=_one_line(action, 10 * MAX_TITLE),
    )


def render(
    kind: str,
    severity: str,
    entity: str,
    facts: Facts,
    locale: str = DEFAULT_LOCALE,
    currency: str = "ETH",
) -> Content:
    """The notification text of one significant change. `facts` may lack any key.

    Raises ValueError for an unknown kind or severity, or a malformed currency code.
    `change_pct` is in percent (-12.5 is a 12.5 % fall); `confidence` is 0–1; `slope` is in
    points per hour; `floor` and `previous_floor` are amounts in `currency`."""
    _check(kind, severity)
    where = resolve_locale(locale)
    context = _context(kind, severity, entity, facts, where, _currency(currency))
    return _render_template(f"{kind}.txt", where.language, context)


DigestItem = tuple[str, str, str, Facts]


def render_digest(
    items: Sequence[DigestItem],
    locale: str = DEFAULT_LOCALE,
    *,
    total: int | None = None,
    currency: str = "ETH",
) -> Content:
    """One summary of grouped (kind, severity, entity, facts) items, newest last.

    `total` is how many items were grouped when the caller kept only the newest (pacing's
    `Digest.count`); the digest counts that many and lists what it has. Raises ValueError for
    an empty digest or an item of unknown kind or severity."""
    if not items:
        raise ValueError("a digest needs at least one item")
    where = resolve_locale(locale)
    code = _currency(currency)
    for kind, severity, _, _ in items:
        _check(kind, severity)
    lines: list[str] = []
    for kind, severity, entity, facts in items[-MAX_DIGEST_LINES:]:
        context = _context(kind, severity, entity, facts, where, code)
        lines.append(_render_template(f"{kind}.txt", where.language, context).title)
    count = max(total or 0, len(items))
    fmt = _Formatter(_babel_locale(where.babel), code)
    context = {
        "count": count,
        "count_text": fmt.number(count, 0),
        "more": count - len(lines),
        "more_text": fmt.number(count - len(lines), 0),
        "lines": lines,
        "all_low": all(severity == "low" for _, severity, _, _ in items),
    }
    return _render_template("digest.txt", where.language, context)
