"""Transliteration never loses a character: each Han character becomes one pinyin syllable,
or the text is refused naming the character that has no Latin form."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.charset import CharsetPolicy, CharsetRefusal

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
