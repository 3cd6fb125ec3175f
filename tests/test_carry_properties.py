"""Properties of whole-document translation, over messages hypothesis makes from the CBPR+
"max" examples: any subset of their optional parts, any text in their names and remittance.

For every such message, from either side, the gateway either
- translates it, and then the output holds to the target profile and carries every element
  path and content of the input (only the dialect's parts changed; text the target cannot
  carry transliterated with its original kept beside it), or
- refuses it with a reason a partner can act on (NARR naming the field a character set
  cannot carry), never FF01 for a message its own profile accepted, never an internal error.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.config import Config
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.messages.registry import profile_set
from gateway.sides import Side, other_side
from gateway.translation import Translator
from tests.corpus import adapt, examples
from tests.test_corpus import assert_carried_whole

# Optional parts of a credit transfer's transaction, any of which a partner may leave out.
OPTIONAL = (
    "PmtTpInf",
    "InstdAmt",
    "XchgRate",
    "ChrgsInf",
    "PrvsInstgAgt1",
    "PrvsInstgAgt1Acct",
    "IntrmyAgt1",
    "IntrmyAgt1Acct",
    "IntrmyAgt2",
    "IntrmyAgt3",
    "UltmtDbtr",
    "InitgPty",
    "DbtrAcct",
    "DbtrAgtAcct",
    "CdtrAgtAcct",
    "CdtrAcct",
    "UltmtCdtr",
    "InstrForCdtrAgt",
    "InstrForNxtAgt",
    "Purp",
    "RgltryRptg",
    "Tax",
    "RltdRmtInf",
    "RmtInf",
    "SplmtryData",
)
# Free text a partner fills: names, address lines, remittance.
TEXTS = ("Nm", "StrtNm", "TwnNm", "AdrLine", "Ustrd", "AddtlRmtInf", "InstrInf")

_translator: Translator | None = None
_bases: dict[tuple[str, Side], bytes] = {}


def translator() -> Translator:
    global _translator
    if _translator is None:
        _translator = Translator(Config())
    return _translator


def base(name: str, source: Side) -> bytes:
    if (name, source) not in _bases:
        example = next(e for e in examples() if e.year == "y2026" and e.name == name)
        directory = translator().directory.current()
        _bases[(name, source)] = adapt(example.path.read_bytes(), source, Config(), directory)
    return _bases[(name, source)]


# Latin, accented Latin, Chinese (common and extension B), full-width forms, an emoji.
TEXT = st.text(
    alphabet=st.sampled_from(
        list("AZaz09 -.,/'")
        + list("éüñ")
        + list("上海浦江贸易有限公司陈")
        + ["\U00020000"]
        + list("ＡＢ１")
        + ["\U0001f600"]
    ),
    min_size=1,
    max_size=40,
).map(lambda s: " ".join(s.split()) or "X")


@st.composite
def messages(draw: st.DrawFn) -> tuple[Side, bytes]:
    source: Side = draw(st.sampled_from(["onshore", "offshore"]))
    name = draw(st.sampled_from(["pacs.008.max", "pacs.008_stp.max"]))
    root = etree.fromstring(base(name, source))
    tx = root.find(".//{*}CdtTrfTxInf")
    assert tx is not None
    for child in list(tx):
        if etree.QName(child).localname in OPTIONAL and draw(st.booleans()):
            tx.remove(child)
    texts = [el for el in tx.iter() if etree.QName(el).localname in TEXTS and len(el) == 0]
    for el in draw(st.lists(st.sampled_from(texts), max_size=4, unique=True)) if texts else []:
        limit = 35 if etree.QName(el).localname in ("TwnNm",) else 70
        el.text = draw(TEXT)[:limit]
    return source, etree.tostring(copy.deepcopy(root), xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def profile_sets() -> dict[str, ProfileSet]:
    return {side: profile_set(side) for side in ("onshore", "offshore")}  # type: ignore[misc]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages())
def test_a_message_is_carried_whole_or_refused_with_a_reason(
    profile_sets: dict[str, ProfileSet], message: tuple[Side, bytes]
) -> None:
    source, data = message
    try:
        profile_sets[source].validate(read_message(data))
    except Exception:
        return  # a text longer than its field after our edits: not a message partners send
    out = translator().process(data, source)
    if not out.accepted:
        assert out.error is not None
        assert out.error.kind == "refused" and out.error.code == "NARR", out.error
        assert "cannot carry" in out.error.detail  # the field, and why (no Latin form, too long)
        assert other_side(source) == "offshore"  # only Latin-only text can be refused
        return
    profile_sets[other_side(source)].validate(read_message(out.message))
    assert_carried_whole(data, out.message)
