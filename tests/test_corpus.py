"""The public CBPR+ corpus, adapted to this directory (tests/corpus.py), through the gateway.

First the adaptation itself: the published examples with only identifiers, currency and dates
changed, officially valid. Then the gateway: every example, min and max, both years, from
each side, translates; the output holds to the target profile and the official schema, and
carries every element of the input with its content, except what the dialects map (the
scheme agents' identifiers, the group header's MsgId and CreDtTm, the answers' references to
their original). `python -m tests.corpus` prints the same verdicts."""

from __future__ import annotations

from collections import Counter

import pytest
from lxml import etree

from gateway.config import Config
from gateway.directory import Directory, default_path, load_directory
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.sides import Side, other_side
from gateway.translation import Translator
from tests.conformance import assert_officially_valid
from tests.conftest import ROOT, SAMPLES
from tests.corpus import ANSWERS, Example, adapt, adapt_answer, examples

# What adapt() may change: the scheme agents' identification, the header's parties, BizSvc.
CHANGED = ("InstgAgt/FinInstnId", "InstdAgt/FinInstnId", "AppHdr/Fr", "AppHdr/To", "BizSvc")


def paths(xml: bytes) -> Counter[str]:
    """Element path -> count (text too, except for what adaptation changes by design)."""
    root = etree.fromstring(xml)
    out: Counter[str] = Counter()
    for el in root.iter():
        if not isinstance(el.tag, str) or el is root:  # the envelope: ours or the corpus's
            continue
        path = "/".join(
            etree.QName(p).localname for p in reversed(list(el.iterancestors())) if p is not root
        )
        path = f"{path}/{etree.QName(el).localname}".lstrip("/")
        if any(c in path for c in CHANGED) or el.tag.endswith("IntrBkSttlmDt"):
            continue
        text = (el.text or "").strip()
        attrs = {k: v for k, v in el.attrib.items() if k != "Ccy"}
        out[f"{path}={text}{sorted(attrs.items())}"] += 1
    return out


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(default_path())


CORPUS = examples()


def test_the_corpus_has_every_payment_example() -> None:
    names = {(e.year, e.name) for e in CORPUS}
    for year in ("y2025", "y2026"):
        for name in ("pacs.008", "pacs.008_stp", "pacs.009", "pacs.009_cov", "pacs.009_adv"):
            assert {(year, f"{name}.min"), (year, f"{name}.max")} <= names


@pytest.mark.parametrize("example", CORPUS, ids=lambda e: f"{e.year}/{e.name}")
@pytest.mark.parametrize("source", ["onshore", "offshore"])
def test_an_adapted_example_is_the_published_one_with_only_identifiers_currency_and_dates(
    example: Example, source: str, directory: Directory
) -> None:
    original = example.path.read_bytes()
    adapted = adapt(original, source, Config(), directory)  # type: ignore[arg-type]
    assert_officially_valid(adapted)
    assert paths(adapted) == paths(original)
    root = etree.fromstring(adapted)
    assert {el.get("Ccy") for el in root.iter() if el.get("Ccy")} == {"CNY"}


# What the gateway rewrites in a carried document (gateway/carry.py), by path fragment.
MAPPED = (
    "GrpHdr/MsgId=",
    "GrpHdr/CreDtTm=",
    "Assgnmt/Id=",  # a case's own identification, issued by the gateway
    "Assgnmt/CreDtTm=",
    "InstgAgt/FinInstnId/BICFI=",
    "InstdAgt/FinInstnId/BICFI=",
    "InstgAgt/FinInstnId/ClrSysMmbId",
    "InstdAgt/FinInstnId/ClrSysMmbId",
    "OrgnlGrpInf/OrgnlMsgId=",
    "OrgnlGrpInf/OrgnlMsgNmId=",
    "OrgnlGrpInf/OrgnlCreDtTm=",
    "OrgnlGrpInfAndSts/OrgnlMsgId=",
    "OrgnlGrpInfAndSts/OrgnlMsgNmId=",
    "OrgnlGrpInfAndSts/OrgnlCreDtTm=",
    # A participant named elsewhere by its member id (gateway/carry.py: _other_members).
    "ClrSysMmbId/ClrSysId/Cd=CNAPS[]",
    "ClrSysMmbId/ClrSysId/Cd=HKNCC[]",
)
PARTICIPANT_MEMBER_IDS = {
    f"ClrSysMmbId/MmbId={p.member_id(system)}[]"
    for p in load_directory(default_path()).participants.values()
    for system in ("CNAPS", "HKNCC")
}


def document_items(xml: bytes) -> tuple[Counter[str], Counter[str]]:
    """(path=text[attributes] -> count, path -> count) of the Document, envelope aside."""
    root = etree.fromstring(xml)
    document = next(el for el in root.iter() if etree.QName(el).localname == "Document")
    items: Counter[str] = Counter()
    bare: Counter[str] = Counter()
    for el in document.iter():
        if not isinstance(el.tag, str):
            continue
        path = "/".join(etree.QName(p).localname for p in reversed(list(el.iterancestors())))
        path = f"{path}/{etree.QName(el).localname}".split("Document/", 1)[-1]
        bare[path] += 1
        text = (el.text or "").strip() if len(el) == 0 else ""
        items[f"{path}={text}{sorted(el.attrib.items())}"] += 1
    return items, bare


def assert_carried_whole(given: bytes, sent: bytes) -> None:
    """Every element path of `given` is in `sent`, and every content too, except what the
    dialects map and text the charset policy replaced, whose original `sent` keeps (in
    SplmtryData, by path)."""
    given_items, given_paths = document_items(given)
    sent_items, sent_paths = document_items(sent)
    missing_paths = given_paths - sent_paths
    assert not missing_paths, f"element paths not carried: {sorted(missing_paths)[:10]}"
    kept = {
        (el.get("path", "").split("Document/", 1)[-1], el.text)
        for el in etree.fromstring(sent).iter("{urn:connect-gateway:supplementary:1}OrgnlTxt")
    }
    changed = [
        item
        for item in given_items - sent_items
        if not any(m in item for m in MAPPED)
        and not any(item.endswith(m) for m in PARTICIPANT_MEMBER_IDS)
        and (item.split("=", 1)[0], item.split("=", 1)[1].removesuffix("[]")) not in kept
    ]
    assert not changed, f"content not carried as it came: {sorted(changed)[:10]}"


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator(Config())


@pytest.mark.parametrize("source", ["onshore", "offshore"])
def test_every_example_translates_whole_and_officially_valid(
    source: Side,
    translator: Translator,
    directory: Directory,
    profiles: dict[str, ProfileSet],
) -> None:
    outputs = []
    for example in CORPUS:
        adapted = adapt(example.path.read_bytes(), source, Config(), directory)
        outputs.append(through(translator, profiles, example, adapted, source))
    assert_officially_valid(*outputs)


def through(
    translator: Translator,
    profiles: dict[str, ProfileSet],
    example: Example,
    adapted: bytes,
    source: Side,
) -> bytes:
    """`adapted` through the gateway: accepted, for the other side, valid in its dialect,
    carried whole. The output."""
    outcome = translator.process(adapted, source)
    assert outcome.accepted, f"{example.year}/{example.name}: {outcome.error}"
    assert outcome.destination == other_side(source)
    profiles[other_side(source)].validate(read_message(outcome.message))
    assert_carried_whole(adapted, outcome.message)
    return outcome.message


@pytest.mark.parametrize("source", ["onshore", "offshore"])
def test_every_answer_translates_whole_and_officially_valid(
    source: Side,
    translator: Translator,
    directory: Directory,
    profiles: dict[str, ProfileSet],
) -> None:
    payment = next(e for e in CORPUS if e.name == "pacs.008.min")
    outputs = []
    answers = examples(ANSWERS)
    assert {e.family for e in answers} == set(ANSWERS) and len(answers) == 8
    for example in answers:
        # The payment it answers, sent by the other side through the gateway first.
        original = adapt(payment.path.read_bytes(), other_side(source), Config(), directory)
        assert translator.process(original, other_side(source)).accepted
        uetr = etree.fromstring(original).findtext(".//{*}UETR") or ""
        adapted = adapt_answer(example.path.read_bytes(), source, Config(), directory, uetr)
        outputs.append(through(translator, profiles, example, adapted, source))
    assert_officially_valid(*outputs)


@pytest.mark.parametrize(
    ("source", "sample"),
    [
        ("onshore", "samples/onshore/rich/pacs.008.001.08-structured-chinese.xml"),
        ("offshore", "samples/offshore/rich/pacs.008.001.08-structured-latin.xml"),
    ],
)
def test_our_rich_samples_translate_whole(
    source: Side, sample: str, translator: Translator, profiles: dict[str, ProfileSet]
) -> None:
    given = (ROOT / sample).read_bytes()
    outcome = translator.process(given, source)
    assert outcome.accepted, outcome.error
    profiles[other_side(source)].validate(read_message(outcome.message))
    assert_carried_whole(given, outcome.message)
    assert_officially_valid(given, outcome.message)
    if source == "onshore":  # every Chinese text made Latin, each original kept beside it
        assert len(outcome.notes) == outcome.message.count(b"<OrgnlTxt ") == 13


def test_a_rich_cancellation_request_translates_whole(profiles: dict[str, ProfileSet]) -> None:
    """A request with what CBPR+ lets a camt.056 carry (case, original references, reasons
    with their originator, the original transaction's parties and remittance, Chinese text):
    carried whole offshore, the Chinese originals kept beside their Latin forms."""
    translator = Translator(Config())
    payment = translator.process(
        (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes(), "onshore"
    )
    assert payment.accepted, payment.error
    given = (ROOT / "samples/onshore/rich/camt.056.001.08-max.xml").read_bytes()
    outcome = translator.process(given, "onshore")
    assert outcome.accepted, outcome.error
    profiles["offshore"].validate(read_message(outcome.message))
    assert_carried_whole(given, outcome.message)
    assert_officially_valid(given, outcome.message)
    assert outcome.message.count(b"<OrgnlTxt ") >= 1
