"""Transliteration never loses a character: each Han character becomes one pinyin syllable,
or the text is refused naming the character that has no Latin form."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.charset import CharsetPolicy, CharsetRefusal, FieldPolicy

POLICY = CharsetPolicy.load()
# Han characters of the BMP and of the supplementary extensions (B to G), where pypinyin has
# readings for some and none for many.
HAN = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),
    st.characters(min_codepoint=0x20000, max_codepoint=0x3134F),
).filter(lambda c: "CJK" in unicodedata.name(c, ""))


@given(st.text(HAN, min_size=1, max_size=12))
def test_every_han_character_is_one_syllable_or_the_text_is_refused(name: str) -> None:
    try:
        fitted = POLICY.fit("debtor.name", name, 10_000)
    except CharsetRefusal as refusal:
        # Named: the field and a character of the input with its code point.
        assert "debtor.name" in str(refusal)
        assert any(f"U+{ord(c):04X}" in str(refusal) for c in name), refusal
        return
    assert len(fitted.text.split()) == len(name), (name, fitted.text)
    assert fitted.changed and fitted.original == name


@pytest.mark.parametrize("unknown", ["\U00030000", "\U0002a700", "\u5159"])
def test_a_character_with_no_reading_refuses_the_name_instead_of_vanishing(unknown: str) -> None:
    with pytest.raises(CharsetRefusal, match=f"U\\+{ord(unknown):04X}"):
        POLICY.fit("debtor.name", f"陈{unknown}明", 140)


FOLDED = sorted(POLICY.punctuation)  # typographic punctuation, spaces, letters (data file)
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(
    st.text(st.one_of(PRINTABLE, st.sampled_from(FOLDED)), min_size=1, max_size=60),
    st.sampled_from(["remittance", "debtor.name", "status.info", "reject.text"]),
)
def test_typographic_punctuation_is_never_a_reason_to_refuse(text: str, field: str) -> None:
    """Latin text with any of the typographic punctuation, spaces and letters the policy
    folds is carried as printable Latin, noted when changed, in every field, whatever its
    policy (a field set to refuse non-Latin text included)."""
    strict = CharsetPolicy({field: FieldPolicy("reject")}, POLICY.default, POLICY.punctuation)
    for policy in (POLICY, strict):
        try:
            fitted = policy.fit(field, text, 10_000)
        except CharsetRefusal as refusal:
            # Only a text of nothing but invisible characters is left with nothing to carry.
            assert not text.translate(str.maketrans(POLICY.punctuation)).strip(), refusal
            continue
        assert all(" " <= ch <= "~" for ch in fitted.text), fitted
        assert fitted.changed == (fitted.text != text)
        assert fitted.original == text


def test_a_real_apostrophe_is_carried_offshore_noted_with_its_original_kept() -> None:
    """The CBPR+ corpus's resolution text: U+2019 was refused as having no Latin form."""
    from gateway.config import Config
    from gateway.translation import Translator
    from tests.conftest import SAMPLES

    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    payment = payment.replace("货款 INV-2026-0042".encode(), "Supplier’s invoice – “42”".encode())
    out = Translator(Config()).process(payment, "onshore")
    assert out.accepted, out.error
    assert b"Supplier's invoice - &quot;42&quot;" in out.message or (
        b'Supplier\'s invoice - "42"' in out.message
    )
    assert any(
        n.startswith("remittance: punctuation and letters made plain Latin") for n in out.notes
    )
    assert "Supplier’s invoice – “42”".encode() in out.message  # the original, in SplmtryData
