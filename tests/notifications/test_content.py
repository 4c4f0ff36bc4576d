"""Notification content: every kind × severity × locale renders, numbers and entities read
right per locale, wording follows severity, the catalogs are complete, outside text cannot
inject template syntax, and a broken or partial catalog falls back to English."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

from trustscore_stream.notifications import content
from trustscore_stream.notifications.content import (
    KINDS,
    SEVERITIES,
    SUPPORTED_LOCALES,
    Content,
    compile_po,
    describe_entity,
    render,
    render_digest,
    resolve_locale,
)

PACKAGE = Path(content.__file__).parent
NFT = "nft:eth:0x5af0d9827e0c53e4799bb226655a1de152a425a5:4021"
COLLECTION = "collection:eth:0x5af0d9827e0c53e4799bb226655a1de152a425a5"
WALLET = "wallet:eth:0x8ba1f109551bd432803012645ac136ddd64dba72"
LOCALES = ("en", "de", "es")

FACTS: dict[str, float | str | None] = {
    "score": 42.5,
    "previous": 63.5,
    "delta": -21.0,
    "threshold": 50.0,
    "level": "caution",
    "previous_level": "moderate",
    "change_pct": -12.5,
    "window_s": 7200.0,
    "z": 4.2,
    "slope": -2.5,
    "floor": 1.2345,
    "previous_floor": 1.5,
    "finding": "rug_pull",
    "finding_severity": "critical",
    "confidence": 0.87,
    "evidence": "circular trade among 3 wallets within 2h; creator drained the pool",
    "factors": "market_integrity,fraud_risk",
    "cause_event_id": "0x9f3c:57",
}

# The number each kind is about, as each locale writes it (score 42.5 is in every body too).
MAIN_NUMBER: dict[str, dict[str, str]] = {
    "score_threshold": {"en": "50", "de": "50", "es": "50"},
    "score_change": {"en": "-21", "de": "-21", "es": "-21"},
    "trend_reversal": {"en": "2.5", "de": "2,5", "es": "2,5"},
    "anomaly": {"en": "4.2", "de": "4,2", "es": "4,2"},
    "fraud_finding": {"en": "87%", "de": "87\u00a0%", "es": "87\u00a0%"},
    "price_movement": {"en": "1.2345\u00a0ETH", "de": "1,2345\u00a0ETH", "es": "1,2345\u00a0ETH"},
    "risk_level_change": {"en": "63.5", "de": "63,5", "es": "63,5"},
    "market_condition": {"en": "12.5%", "de": "12,5\u00a0%", "es": "12,5\u00a0%"},
}
SCORE = {"en": "42.5", "de": "42,5", "es": "42,5"}
# Words only the translation has, and the English sources it must not keep.
NATIVE = {"de": ("Maßnahme", "Handeln Sie jetzt"), "es": ("Acción recomendada", "Actúe ya")}
ENGLISH_SOURCE = ("Recommended action", "Act now", "The trust ", "Trust score of")


@pytest.fixture
def fresh_catalogs() -> Iterator[None]:
    """Catalog and environment caches cleared before and after: a test may swap the catalogs."""
    content._translations.cache_clear()
    content._environment.cache_clear()
    yield
    content._translations.cache_clear()
    content._environment.cache_clear()


def _no_template_syntax(c: Content) -> None:
    for part in (c.title, c.body, c.action):
        assert "{{" not in part and "{%" not in part and "{#" not in part, part


# Every kind × severity × locale ------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("kind", KINDS)
def test_renders_every_kind_severity_and_locale(kind: str, severity: str, locale: str) -> None:
    c = render(kind, severity, NFT, FACTS, locale)
    assert 0 < len(c.title) <= content.MAX_TITLE and "\n" not in c.title
    entity = describe_entity(NFT, locale)
    assert entity in c.body and entity in c.title
    assert SCORE[locale] in c.body
    assert MAIN_NUMBER[kind][locale] in c.body, (MAIN_NUMBER[kind][locale], c.body)
    assert c.action and "\n" not in c.action
    assert c.action in c.body  # the body states the action too
    _no_template_syntax(c)
    if locale != "en":
        english = render(kind, severity, NFT, FACTS, "en")
        assert c.title != english.title and c.action != english.action
        assert any(word in c.body for word in NATIVE[locale]), c.body
        for source in ENGLISH_SOURCE:
            assert source not in c.body and source not in c.title, source


def test_german_is_german() -> None:
    c = render("score_change", "high", COLLECTION, FACTS, "de")
    assert c.title == "Warnung: Vertrauenswert von Kollektion 0x5af0…25a5 auf 42,5 gefallen"
    assert "Geänderte Faktoren: Marktintegrität und Betrugsrisiko." in c.body
    assert "Vertrauensstufe: Vorsicht (vorher moderat)." in c.body
    assert "Zeitfenster: 2 Stunden." in c.body
    assert "Das ist eine Änderung um -12,5\u00a0%." in c.body


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("kind", KINDS)
def test_missing_facts(kind: str, severity: str, locale: str) -> None:
    entity = describe_entity(WALLET, locale)
    for facts in ({}, {"score": None, "evidence": None}, {"score": "not a number"}):
        c = render(kind, severity, WALLET, facts, locale)
        assert c.title and c.action and entity in c.body
        assert "None" not in c.body and "None" not in c.title
    # Each fact alone: no template branch may assume another fact is there.
    for key, value in FACTS.items():
        c = render(kind, severity, WALLET, {key: value}, locale)
        assert c.title and c.action and entity in c.body, key


# Entities, numbers, money --------------------------------------------------------------------


def test_entities_read_like_names() -> None:
    assert describe_entity(NFT) == "NFT #4021 of 0x5af0…25a5"
    assert describe_entity(COLLECTION) == "collection 0x5af0…25a5"
    assert describe_entity(WALLET) == "wallet 0x8ba1…ba72"
    assert describe_entity(NFT, "de") == "NFT #4021 aus 0x5af0…25a5"
    assert describe_entity(COLLECTION, "es") == "colección 0x5af0…25a5"
    assert describe_entity(COLLECTION.replace(":eth:", ":polygon:")) == (
        "collection 0x5af0…25a5 on polygon"
    )
    long_token = "nft:eth:0x5af0d9827e0c53e4799bb226655a1de152a425a5:" + "7" * 70 + "1234"
    assert describe_entity(long_token) == "NFT #777777…1234 of 0x5af0…25a5"
    # Not an id: shown cleaned and short, never trusted as one.
    odd = describe_entity("nft:eth:{{ config }}\n" + "x" * 500)
    assert "{{" not in odd and "\n" not in odd and len(odd) <= content.MAX_LABEL


def test_numbers_percentages_and_money_per_locale() -> None:
    facts = {"floor": 1234.5, "previous_floor": 0.00012, "change_pct": 12.25, "score": 71.0}
    en = render("price_movement", "medium", COLLECTION, facts, "en").body
    de = render("price_movement", "medium", COLLECTION, facts, "de").body
    assert "1,234.50\u00a0ETH" in en and "0.00012\u00a0ETH" in en and "+12.2%" in en
    assert "1.234,50\u00a0ETH" in de and "0,00012\u00a0ETH" in de and "+12,2\u00a0%" in de
    assert "ETH1" not in en  # Babel's fallback for a code it does not know
    usd = render("price_movement", "medium", COLLECTION, facts, "en", currency="usd").body
    eur = render("price_movement", "medium", COLLECTION, facts, "de", currency="EUR").body
    assert "$1,234.50" in usd and "1.234,50\u00a0€" in eur
    assert "Current score: 71." in en
    with pytest.raises(ValueError, match="currency"):
        render("price_movement", "low", COLLECTION, facts, "en", currency="E T H")


def test_unusable_numbers_count_as_missing() -> None:
    for bad in (float("nan"), float("inf"), "nan", "12abc", "", "1e999"):
        c = render("score_change", "medium", NFT, {"score": bad}, "en")
        assert c.title == "Trust score of NFT #4021 of 0x5af0…25a5 changed", bad
    # A change computed from a near-zero base is as unusable as a huge input.
    for kind in ("price_movement", "market_condition", "score_change"):
        tiny = {"floor": 1.0, "previous_floor": 1e-300, "score": 1.0, "previous": 1e-300}
        assert "%" not in render(kind, "low", NFT, tiny, "en").body
    c = render("score_change", "medium", NFT, {"score": " 42.5 ", "previous": 50}, "en")
    assert "fell from 50 to 42.5 (-7.5 points)" in c.body


def test_score_change_measures_from_the_window_base() -> None:
    # significance.py reports the window's extreme as `base`; the change is from there.
    facts = {"score": 40.0, "previous": 45.0, "base": 60.0, "change_pct": -33.3}
    c = render("score_change", "medium", NFT, facts, "en")
    assert "fell from 60 to 40 (-20 points)" in c.body and "-33.3%" in c.body


# Severity and actions --------------------------------------------------------------------------


def test_wording_follows_severity() -> None:
    critical = render("score_threshold", "critical", NFT, FACTS)
    high = render("score_threshold", "high", NFT, FACTS)
    low = render("score_threshold", "low", NFT, FACTS)
    assert critical.title.startswith("Urgent: ") and "Act now: " in critical.body
    assert high.title.startswith("Warning: ") and "please review it soon" in high.body
    assert not low.title.startswith(("Urgent", "Warning")) and "For your information." in low.body
    de = render("score_threshold", "critical", NFT, FACTS, "de")
    assert de.title.startswith("Dringend: ") and "Handeln Sie jetzt: " in de.body


def test_actions_fit_the_situation() -> None:
    risky = {**FACTS, "level": "high_risk", "score": 25.0}
    assert render("risk_level_change", "critical", NFT, risky).action == (
        "Avoid buying; if you hold it, review the findings before any further trade."
    )
    assert render("risk_level_change", "critical", COLLECTION, risky).action.startswith(
        "Avoid buying from this collection"
    )
    assert render("risk_level_change", "critical", WALLET, risky).action.startswith(
        "Avoid trading with this wallet"
    )
    better: dict[str, float | str | None] = {
        "score": 82.0,
        "previous": 75.0,
        "level": "high_trust",
        "previous_level": "moderate",
    }
    assert render("risk_level_change", "low", NFT, better).action == "No action needed."
    assert render("score_change", "low", NFT, better).action == "No action needed."
    phishing: dict[str, float | str | None] = {"finding": "phishing", "confidence": 0.9}
    action = render("fraud_finding", "high", NFT, phishing).action
    assert action.startswith("Do not buy it") and "Do not sign transactions" in action
    assert "illegal" in render("fraud_finding", "high", WALLET, {"finding": "sanctioned"}).action
    assert render("fraud_finding", "low", NFT, {"finding": "other"}).action == (
        "Review the finding before your next trade."
    )
    drop = {"floor": 0.8, "previous_floor": 1.2}
    assert "fast drop" in render("price_movement", "high", COLLECTION, drop).action
    assert render("price_movement", "low", COLLECTION, drop).action == "No action needed."


def test_body_explains_why() -> None:
    c = render("score_change", "medium", NFT, FACTS)
    assert "fell from 63.5 to 42.5 (-21 points)" in c.body
    assert "Factors that changed: market integrity and fraud risk." in c.body
    assert "• circular trade among 3 wallets within 2h" in c.body
    assert "• creator drained the pool" in c.body
    assert "Related fraud finding: rug pull (confidence 87%)." in c.body
    assert "Triggered by event 0x9f3c:57." in c.body
    finding = render("fraud_finding", "critical", NFT, FACTS)
    assert finding.title == "Urgent: Fraud finding for NFT #4021 of 0x5af0…25a5: rug pull"
    assert "Severity of the finding: critical. Confidence: 87%." in finding.body


def test_direction_given_by_significance_wins() -> None:
    worse = {"level": "caution", "previous_level": "weird", "direction": "worse"}
    assert "dropped to caution" in render("risk_level_change", "high", NFT, worse).title
    up: dict[str, float | str | None] = {"slope": 3.0, "direction": "up"}
    assert "turned upward" in render("trend_reversal", "low", NFT, up).title


def test_unknown_kind_or_severity_raises() -> None:
    with pytest.raises(ValueError, match="kind"):
        render("score_panic", "low", NFT, FACTS)
    with pytest.raises(ValueError, match="kind"):
        render("_common", "low", NFT, FACTS)  # a shared template is not a kind
    with pytest.raises(ValueError, match="severity"):
        render("anomaly", "urgent", NFT, FACTS)


def test_each_kind_has_a_template_and_nothing_else_does() -> None:
    names = {p.stem for p in (PACKAGE / "templates").glob("*.txt")}
    assert names == {*KINDS, "digest", "_common"}


# Locales -----------------------------------------------------------------------------------------


def test_locale_resolution() -> None:
    german = render("anomaly", "medium", NFT, FACTS, "de")
    for tag in ("de-DE", "de_DE", "DE", "de_AT", " de "):
        assert resolve_locale(tag).language == "de"
        assert render("anomaly", "medium", NFT, FACTS, tag).title == german.title
    english = render("anomaly", "medium", NFT, FACTS, "en")
    for tag in ("fr", "", "zz_ZZ", "de!!", "en_US", "x" * 200):
        assert render("anomaly", "medium", NFT, FACTS, tag).body == english.body, tag
    # The regional locale keeps its own number format under the language's words.
    assert resolve_locale("de-CH").babel == "de_CH"
    assert resolve_locale("es_MX").babel == "es_MX"
    assert SUPPORTED_LOCALES[0] == "en" and set(SUPPORTED_LOCALES) == set(LOCALES)


# Digest ----------------------------------------------------------------------------------------


def test_digest_lists_its_items_with_a_count() -> None:
    items = [
        ("score_change", "low", NFT, {"score": 71.5, "previous": 65.0}),
        ("trend_reversal", "low", COLLECTION, {"slope": 1.5}),
        ("price_movement", "low", COLLECTION, {"floor": 2.0, "previous_floor": 1.5}),
    ]
    en = render_digest(items, "en")
    assert en.title == "3 updates on your watched items"
    assert "Summary of 3 updates:" in en.body
    for kind, severity, entity, facts in items:
        assert f"• {render(kind, severity, entity, facts).title}" in en.body
    assert en.action.startswith("No action needed") and en.action in en.body
    de = render_digest(items, "de")
    assert de.title == "3 Neuigkeiten zu Ihren beobachteten Objekten"
    assert describe_entity(NFT, "de") in de.body and "71,5" in de.body
    one = render_digest(items[:1], "en")
    assert one.title == "1 update on your watched items"
    assert render_digest(items[:1], "de").title == "1 Neuigkeit zu Ihren beobachteten Objekten"


def test_digest_counts_what_it_does_not_list() -> None:
    items = [("score_change", "medium", NFT, {"score": float(i)}) for i in range(60)]
    c = render_digest(items, "en", total=1234)
    assert c.title == "1,234 updates on your watched items"
    assert c.body.count("\n• ") == content.MAX_DIGEST_LINES
    assert "…and 1,184 more." in c.body
    assert "Trust score of NFT #4021 of 0x5af0…25a5 is now 59" in c.body  # newest kept
    assert "is now 9\n" not in c.body  # oldest dropped
    assert not c.action.startswith("No action needed")  # not all low: worth a look
    assert "1.234 Neuigkeiten" in render_digest(items, "de", total=1234).title


def test_digest_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        render_digest([], "en")
    with pytest.raises(ValueError, match="kind"):
        render_digest([("score_change", "low", NFT, {}), ("nope", "low", NFT, {})], "en")
    # Checked even where the digest keeps only the newest items.
    no_facts: dict[str, float | str | None] = {}
    old_bad = [("score_change", "extreme", NFT, no_facts)] + [
        ("anomaly", "low", NFT, no_facts)
    ] * 60
    with pytest.raises(ValueError, match="severity"):
        render_digest(old_bad, "en")


# Catalogs ----------------------------------------------------------------------------------------

_EXTRACT_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "newstyle_gettext": "true",
    "trimmed": "true",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "silent": "false",
}
_JINJA = "jinja2.ext:babel_extract"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _source_messages() -> set[str]:
    """Every msgid the templates and content.py use (plural messages by their singular)."""
    found: set[str] = set()
    keywords: dict[str, tuple[int, ...] | None] = {"_": None, "gettext": None, "ngettext": (1, 2)}
    for path in sorted((PACKAGE / "templates").glob("*.txt")):
        with path.open("rb") as fp:
            for _, message, _, _ in extract(_JINJA, fp, keywords, options=_EXTRACT_OPTIONS):
                found.add(message if isinstance(message, str) else message[0])
    with (PACKAGE / "content.py").open("rb") as fp:
        for _, message, _, _ in extract("python", fp, {"N_": None}):
            found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", [lang for lang in SUPPORTED_LOCALES if lang != "en"])
def test_catalog_is_complete_and_clean(language: str) -> None:
    path = PACKAGE / "locales" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fp:
        catalog = read_po(fp, locale=language)
    assert not catalog.fuzzy and catalog.num_plurals == 2
    messages = [m for m in catalog if m.id]
    assert messages
    for m in messages:
        strings = (m.string,) if isinstance(m.string, str) else m.string
        ids = (m.id,) if isinstance(m.id, str) else m.id
        assert not m.fuzzy, m.id
        assert strings and all(strings), f"untranslated: {m.id!r}"
        expected = {name for text in ids for name in _PLACEHOLDER.findall(text)}
        for s in strings:
            assert set(_PLACEHOLDER.findall(s)) <= expected, (m.id, s)
            assert set(_PLACEHOLDER.findall(s)) >= expected - {"n"}, (m.id, s)
            s % dict.fromkeys(expected, "x")  # no stray % that would fail at render time
    in_catalog = {m.id if isinstance(m.id, str) else m.id[0] for m in messages}
    source = _source_messages()
    assert source - in_catalog == set(), "strings missing from the catalog"
    assert in_catalog - source == set(), "stale strings no source uses"


_PARTIAL_PO = """\
msgid ""
msgstr ""
"Language: de\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

msgid "Recommended action: %(action)s"
msgstr "Empfohlene Maßnahme: %(action)s"

msgid "No action needed."
msgstr ""

#, fuzzy
msgid "Current score: %(score)s."
msgstr "Aktueller Wert: %(score)s."

msgid "The trust score of %(entity)s is now %(score)s."
msgstr "Der Vertrauenswert von %(entity)s liegt bei %(wert)s."

msgid "Previous score: %(previous)s."
msgstr "Vorheriger Wert: 100%."

msgid "%(n)s update on your watched items"
msgid_plural "%(n)s updates on your watched items"
msgstr[0] "%(n)s Neuigkeit"
msgstr[1] ""
"""


def test_partial_catalog_falls_back_to_english() -> None:
    tr = compile_po(BytesIO(_PARTIAL_PO.encode()), "de")
    assert tr.gettext("Recommended action: %(action)s") == "Empfohlene Maßnahme: %(action)s"
    assert tr.gettext("No action needed.") == "No action needed."  # untranslated
    assert tr.gettext("Current score: %(score)s.") == "Current score: %(score)s."  # fuzzy
    # Wrong placeholder or stray %: would raise at render time, so it is dropped.
    src = "The trust score of %(entity)s is now %(score)s."
    assert tr.gettext(src) == src
    assert tr.gettext("Previous score: %(previous)s.") == "Previous score: %(previous)s."
    plural = ("%(n)s update on your watched items", "%(n)s updates on your watched items")
    assert tr.ngettext(*plural, 2) == plural[1]  # a plural with a missing form: all English


def test_partial_catalog_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_catalogs: None
) -> None:
    po = tmp_path / "de" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text(_PARTIAL_PO, encoding="utf-8")
    monkeypatch.setattr(content, "_LOCALES_ROOT", tmp_path)
    c = render("score_change", "medium", NFT, {"score": 42.5, "level": "high_trust"}, "de")
    assert "Empfohlene Maßnahme: " in c.body  # translated
    assert "The trust score of NFT #4021 of 0x5af0…25a5 is now 42,5." in c.body  # English
    assert "Trust level: high trust." in c.body  # not in the catalog: English
    # A plural entry missing a form falls back as a whole, in both numbers.
    assert render_digest([("anomaly", "low", NFT, {})], "de").title == (
        "1 update on your watched items"
    )
    assert render_digest([("anomaly", "low", NFT, {})] * 2, "de").title == (
        "2 updates on your watched items"
    )


def test_missing_catalog_falls_back_to_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_catalogs: None
) -> None:
    monkeypatch.setattr(content, "_LOCALES_ROOT", tmp_path)
    de = render("anomaly", "high", NFT, FACTS, "de")
    assert de.title.startswith("Warning: ") and "4,2" in de.body  # English words, German numbers


# Outside text --------------------------------------------------------------------------------


def test_outside_text_is_a_value_never_a_template() -> None:
    facts = {
        **FACTS,
        "evidence": "{{ 7*7 }} {% for x in range(9) %}x{% endfor %} %(entity)s {#",
        "finding": "{{ cycler.__init__.__globals__ }}",
        "factors": "{{ 1+1 }},market_integrity",
        "cause_event_id": "{%raw%}",
    }
    for kind in KINDS:
        c = render(kind, "critical", NFT, facts)
        _no_template_syntax(c)
        assert "49" not in c.body and "xxxxxxxxx" not in c.body
        if kind == "score_change":
            assert "{ { 7*7 }} { % for x in range(9) %}x{ % endfor %} %(entity)s { #" in c.body
            assert "{ { 1+1 }} and market integrity" in c.body


def test_evidence_is_one_line_per_item_and_length_limited() -> None:
    evidence = "first\nline\twith \u202etricks; " + "y" * 1000
    c = render("fraud_finding", "high", NFT, {"evidence": evidence, "finding": "x" * 500})
    lines = [line for line in c.body.splitlines() if line.startswith("• ")]
    assert lines[0] == "• first line with tricks"
    assert lines[1].endswith("…") and sum(len(line) - 2 for line in lines) < content.MAX_EVIDENCE
    assert "\u202e" not in c.body
    assert len(c.title) <= content.MAX_TITLE and c.title.endswith("…")


_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=400)
_ANY_FACT = st.one_of(
    st.none(),
    _ANY_TEXT,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    severity=st.sampled_from(SEVERITIES),
    locale=st.sampled_from((*LOCALES, "de-DE")),
    evidence=_ANY_TEXT,
    finding=_ANY_TEXT,
    text_facts=st.dictionaries(
        st.sampled_from(("factors", "cause_event_id", "level", "previous_level", "direction")),
        _ANY_TEXT,
    ),
)
def test_any_text_renders_safely(
    kind: str,
    severity: str,
    locale: str,
    evidence: str,
    finding: str,
    text_facts: Mapping[str, str],
) -> None:
    facts = {**FACTS, **text_facts, "evidence": evidence, "finding": finding}
    c = render(kind, severity, NFT, facts, locale)
    _no_template_syntax(c)
    assert 0 < len(c.title) <= content.MAX_TITLE and c.action
    c.body.encode("utf-8")  # no lone surrogate survives
    assert len(c.body) < 4000


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    entity=_ANY_TEXT,
    facts=st.dictionaries(st.sampled_from(sorted(FACTS)), _ANY_FACT),
    currency=st.sampled_from(("ETH", "WETH", "USD", "EUR", "JPY", "BTC")),
)
def test_any_facts_and_entity_render(
    kind: str, entity: str, facts: Mapping[str, float | str | None], currency: str
) -> None:
    c = render(kind, "medium", entity, facts, "de", currency=currency)
    _no_template_syntax(c)
    assert c.title and c.action
    assert render_digest([(kind, "low", entity, facts)], "es").title


# Layering ----------------------------------------------------------------------------------------


def test_content_imports_no_io_or_async() -> None:
    forbidden = ("faust", "mode", "aiohttp", "aiokafka", "sqlalchemy", "asyncio", "rocksdict")
    code = (
        "import sys, trustscore_stream.notifications.content as c\n"
        "c.render('anomaly', 'low', 'wallet:eth:0x' + '1' * 40, {}, 'de')\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
