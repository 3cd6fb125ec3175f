"""The gateway's transliteration table and segmenter (gateway/pinyin.py) against pypinyin
itself: the same syllables for any text, and the committed table is what the pinned pypinyin
compiles to."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from pypinyin import Style
from pypinyin import lazy_pinyin as oracle

from gateway.pinyin import lazy_pinyin, table
from tests.conftest import ROOT

TABLE = table()
PHRASES = TABLE.keys
CHARS = sorted(TABLE.chars)
# Characters around and outside the readings: Latin, digits, punctuation, CJK symbols and
# radicals, ideographs of the extensions that have no reading, a private-use character the
# pattern covers, combining marks.
OTHERS = list("aZ09 -,.、。〇〡⺀⼀㇀々〻\ue815\U0002a6e0\U00031350\u0301（）·")

piece = st.one_of(
    st.sampled_from(PHRASES),  # whole phrases: segmentation at work
    # Prefixes: a text that ends inside one reads each character left alone.
    st.sampled_from(PHRASES).map(lambda p: p[: len(p) // 2 + 1]),
    st.sampled_from(PHRASES).map(lambda p: p[:-1]),
    st.sampled_from(CHARS),
    st.sampled_from(OTHERS),
    st.text(max_size=3),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(piece, max_size=12).map("".join))
def test_the_same_syllables_as_pypinyin_for_any_text(text: str) -> None:
    assert lazy_pinyin(text) == oracle(text, style=Style.NORMAL, errors="default")


def test_names_and_polyphones_read_as_pypinyin_reads_them() -> None:
    for text in (
        *("重庆银行", "长江实业", "单于", "银行行长重新", "上海浦江贸易有限公司", "〇一二"),
        # Ending inside a longer phrase: each character alone, not the phrase within.
        *("七返还", "下不了", "不着边", "一块石头落了"),
    ):
        assert lazy_pinyin(text) == oracle(text, style=Style.NORMAL, errors="default")


def test_the_committed_table_is_what_the_pinned_pypinyin_compiles_to() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pinyin_table.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
