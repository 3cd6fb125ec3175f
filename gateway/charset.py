"""Fitting text into the offshore dialect's Latin-only fields, by a per-field policy (data file).

Nothing is changed silently: a transliteration is reported, a truncation (only where the policy
allows it) is recorded in the outcome's notes, and text that cannot be made Latin refuses the
message with the field and the offending character named.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from gateway.packaged import packaged
from gateway.pinyin import lazy_pinyin, table

Policy = Literal["transliterate", "reject"]


class CharsetRefusal(ValueError):
    """Text that the target field cannot carry under the field's policy."""


@dataclass(frozen=True)
class FieldPolicy:
    policy: Policy = "transliterate"
    keep_original: bool = False
    truncate: bool = False


@dataclass(frozen=True)
class Fitted:
    text: str
    changed: bool  # transliterated or normalised
    truncated_from: int | None  # original length of the Latin text, when cut
    original: str
    # What was done, for the note: "transliterated to Latin", or "punctuation and letters
    # made plain Latin" when that was all.
    how: str = "transliterated to Latin"


def is_latin(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def _is_han(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "")


@lru_cache(maxsize=65536)
def transliterate(text: str) -> str:
    """Chinese to upper-case pinyin syllables; full-width forms and accents to plain ASCII.

    Cached: the phrase-aware conversion (right readings for polyphones in names,
    gateway/pinyin.py) is the costliest step of a field, and payment traffic repeats its
    customers' names heavily.
    """
    text = unicodedata.normalize("NFKC", text)  # full-width letters, digits, punctuation
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            # A character without a reading stays as it is, so the Latin check below refuses
            # the text naming it (dropping it made the extension-B..G ideographs of some
            # names vanish without a note).
            syllables = lazy_pinyin("".join(run))
            word = " ".join(s.upper() for s in syllables)
            if out and out[-1] not in (" ", ""):
                out.append(" ")
            out.append(word)
            out.append(" ")
            run.clear()

    for ch in text:
        if _is_han(ch):
            run.append(ch)
            continue
        flush()
        if ch == "、" or ch == "。":
            out.append(", " if ch == "、" else ". ")
            continue
        decomposed = unicodedata.normalize("NFKD", ch)
        stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
        out.append(stripped)
    flush()
    return " ".join("".join(out).split())


def prepare() -> None:
    """Load the transliteration table now (the service, before its first batch)."""
    table()


class CharsetPolicy:
    def __init__(
        self,
        fields: dict[str, FieldPolicy],
        default: FieldPolicy,
        punctuation: dict[str, str] | None = None,
    ) -> None:
        self.fields = fields
        self.default = default
        # Typographic punctuation, and Latin letters with no plain decomposition -> their
        # Latin equivalent (the data file's [punctuation] and [letters]).
        self.punctuation = punctuation or {}
        self._fold = str.maketrans(self.punctuation)

    @classmethod
    def load(cls, path: Path | None = None) -> CharsetPolicy:
        path = path or packaged("data", "charset-policy.toml")
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        raw = data.get("offshore", {})
        punctuation = {**data.get("punctuation", {}), **data.get("letters", {})}
        for char, latin in punctuation.items():
            if len(char) != 1 or not isinstance(latin, str) or not is_latin(latin):
                raise ValueError(
                    f"{path}: {char!r} must be one character and map to printable Latin, "
                    f"not {latin!r}"
                )
        policies: dict[str, FieldPolicy] = {}
        for name, entry in raw.items():
            policy = entry.get("policy", "transliterate")
            if policy not in ("transliterate", "reject"):
                raise ValueError(f"{path}: {name}: policy must be transliterate or reject")
            policies[name] = FieldPolicy(
                policy, bool(entry.get("keep_original", False)), bool(entry.get("truncate", False))
            )
        default = policies.pop("default", FieldPolicy())
        return cls(policies, default, punctuation)

    def policy(self, field: str) -> FieldPolicy:
        return self.fields.get(field, self.default)

    def fit(self, field: str, text: str, max_len: int) -> Fitted:
        """Latin text for an offshore field, or CharsetRefusal. Typographic punctuation and
        Latin letters without a plain spelling are folded first, in every field: they are
        never a reason to refuse."""
        rule = self.policy(field)
        latin = text.translate(self._fold) if not is_latin(text) else text
        changed = latin != text
        how = "punctuation and letters made plain Latin"
        if changed and not latin.strip():
            raise CharsetRefusal(f"{field}: nothing left but invisible characters")
        if not is_latin(latin):
            if rule.policy == "reject":
                raise CharsetRefusal(f"{field}: non-Latin text is not accepted offshore")
            latin, changed, how = transliterate(latin), True, "transliterated to Latin"
            bad = next((ch for ch in latin if not " " <= ch <= "~"), None)
            if bad is not None:
                raise CharsetRefusal(
                    f"{field}: character {bad!r} (U+{ord(bad):04X}) has no Latin form"
                )
            if not latin:
                raise CharsetRefusal(f"{field}: nothing left after transliteration")
        if len(latin) <= max_len:
            return Fitted(latin, changed, None, text, how)
        if not rule.truncate:
            raise CharsetRefusal(
                f"{field}: {len(latin)} characters after transliteration, the field takes "
                f"{max_len}, and the policy does not allow truncation"
            )
        cut = latin[:max_len]
        if latin[max_len] != " " and " " in cut[max_len // 2 :]:
            cut = cut[: cut.rfind(" ")]  # at a word boundary, when one is near the end
        return Fitted(cut.rstrip(), changed, len(latin), text, how)
