"""Compile pypinyin's dictionaries into the table the gateway transliterates with at run time
(data/pinyin.tsv), so a process does not import pypinyin (0.2 s of dictionaries and
segmenter training) to translate one message.

    python scripts/pinyin_table.py [--check]

What is compiled is exactly what `pypinyin.lazy_pinyin(text, Style.NORMAL, errors="default")`
reads, already in that style: every character's default reading, every phrase's readings, and
the pattern of characters that have readings. gateway/pinyin.py segments and converts the way
pypinyin does; tests/test_pinyin.py checks the two agree, with pypinyin itself as the oracle.
`--check`: fail if the committed table is not what this pypinyin compiles to (CI, after an
upgrade of pypinyin).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pypinyin
from pypinyin import Style
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
from pypinyin.converter import UltimateConverter

TABLE = Path(__file__).resolve().parents[1] / "data" / "pinyin.tsv"


def syllables(converter: UltimateConverter, segment: str) -> list[str]:
    """What lazy_pinyin makes of one segment, as pypinyin's converter makes it."""
    items = converter.convert(segment, Style.NORMAL, False, "default", strict=True)
    return [item[0] for item in items]


def compile_table() -> str:
    converter = UltimateConverter()
    pattern = RE_HANS.pattern
    assert pattern.startswith("^(?:[") and pattern.endswith("])+$"), pattern
    lines = [
        f"# Compiled by scripts/pinyin_table.py from pypinyin {pypinyin.__version__} (MIT "
        "licence, https://github.com/mozillazg/python-pinyin): do not edit.",
        f"# hans\t{pattern[5:-4]}",
        "# characters",
    ]
    for code in sorted(PINYIN_DICT):
        # The reading a character gets inside a segment that is not a phrase (a segment of
        # one character that is a phrase of its own reads as that phrase).
        first = PINYIN_DICT[code].split(",")[0]
        reading = converter.convert_style(chr(code), first, Style.NORMAL, strict=True) or ""
        assert "\t" not in reading and "\n" not in reading and " " not in reading
        lines.append(f"{chr(code)}\t{reading}")
    lines.append("# phrases (sorted)")
    for phrase in sorted(PHRASES_DICT):
        readings = syllables(converter, phrase)
        assert all(" " not in r and "\t" not in r for r in readings), phrase
        lines.append(f"{phrase}\t{' '.join(readings)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = compile_table()
    if args.check:
        if TABLE.read_text(encoding="utf-8") != text:
            print(f"{TABLE} is not what pypinyin {pypinyin.__version__} compiles to")
            return 1
        return 0
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
