"""The adapted CBPR+ corpus (tests/corpus.py) is what the published examples are, with only
identifiers, currency and dates changed: officially valid, every other element path and text
kept. This checks the adaptation itself; what the gateway does with the corpus is issue work
in progress (`python -m tests.corpus` prints it)."""

from __future__ import annotations

from collections import Counter

import pytest
from lxml import etree

from gateway.config import Config
from gateway.directory import Directory, default_path, load_directory
from tests.conformance import assert_officially_valid
from tests.corpus import Example, adapt, examples

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
