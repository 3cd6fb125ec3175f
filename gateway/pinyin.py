"""Chinese to pinyin syllables, as `pypinyin.lazy_pinyin(text, Style.NORMAL,
errors="default")` gives them, from a table compiled from pypinyin's dictionaries
(data/pinyin.tsv, by scripts/pinyin_table.py).

Why not pypinyin itself at run time: importing it loads 47,000 phrases and 42,000 characters
into nested lists and trains its segmenter on every prefix of every phrase, 0.2 s, before the
first syllable; a command translating one message paid more for that than for everything else.
Here the table loads as flat strings in a few milliseconds, and a phrase's readings are split
only when a text uses it.

The segmentation is pypinyin's (strict forward maximum matching): at each position, extend
the match while it is a prefix of some phrase, and keep the longest match that is a phrase;
with none, one character goes alone, or, when the text ended while still matching prefixes,
every character left goes alone. A segment that is a phrase reads as the phrase; any other
reads character by character; a character without a reading stays as it is. Runs of
characters without readings stay whole. tests/test_pinyin.py checks this against pypinyin.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache

from gateway.packaged import packaged


@dataclass(frozen=True)
class Table:
    hans: re.Pattern[str]  # a run of characters that have readings
    chars: dict[str, str]  # character -> its reading outside a phrase
    phrases: dict[str, str]  # phrase -> its readings, space-separated
    keys: list[str]  # the phrases, sorted: prefix tests by bisection

    def is_prefix(self, text: str) -> bool:
        """Whether some phrase starts with `text`."""
        at = bisect_left(self.keys, text)
        return at < len(self.keys) and self.keys[at].startswith(text)


@lru_cache(maxsize=1)
def table() -> Table:
    text = packaged("data", "pinyin.tsv").read_text(encoding="utf-8")
    head, _, rest = text.partition("\n# characters\n")
    chars_part, _, phrases_part = rest.partition("\n# phrases (sorted)\n")
    hans = next(line for line in head.splitlines() if line.startswith("# hans\t"))[7:]
    # One "key<TAB>value" a line: splitting on both separators at once gives keys and values
    # in turn, which dict(zip()) pairs without a Python loop over 89,000 lines.
    chars = _pairs(chars_part)
    phrases = _pairs(phrases_part)
    assert chars and phrases, "the pinyin table is incomplete"
    keys = list(phrases)  # written sorted
    return Table(re.compile(f"[{hans.encode().decode('unicode_escape')}]+"), chars, phrases, keys)


def _pairs(part: str) -> dict[str, str]:
    items = iter(part.rstrip("\n").replace("\n", "\t").split("\t"))
    return dict(zip(items, items, strict=True))


def lazy_pinyin(text: str) -> list[str]:
    """The syllables of `text`: one per character that has a reading, a run of characters
    without readings as one item."""
    t = table()
    out: list[str] = []
    at = 0
    for run in t.hans.finditer(text):
        if run.start() > at:
            out.append(text[at : run.start()])
        for segment in _segments(t, run.group()):
            out += _read(t, segment)
        at = run.end()
    if at < len(text):
        out.append(text[at:])
    return out


def _segments(t: Table, run: str) -> list[str]:
    out: list[str] = []
    remain = run
    while remain:
        phrase = ""
        for end in range(1, len(remain) + 1):
            word = remain[:end]
            if not t.is_prefix(word):
                break
            if word in t.phrases:
                phrase = word
        else:
            if not phrase:  # the text ended inside a prefix: what is left goes alone
                out += list(remain)
                break
        if phrase:
            out.append(phrase)
            remain = remain[len(phrase) :]
        else:
            out.append(remain[0])
            remain = remain[1:]
    return out


def _read(t: Table, segment: str) -> list[str]:
    readings = t.phrases.get(segment)
    if readings is not None:
        return readings.split(" ")
    return [t.chars.get(ch, ch) for ch in segment]
