"""ISO's external code sets as data (data/iso-code-sets.toml): where they came from, that every
code the gateway checks comes from them, that every code in the traffic the tests hold is
known, and that a real code once missing from a hand-kept list (PECR) now passes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gateway.code_sets import code_sets, unknown
from gateway.config import Config
from gateway.iso20022.reader import read_message
from gateway.iso20022.tree import one
from gateway.messages.registry import BY_DEF, TYPES
from gateway.translation import Translator
from tests import corpus
from tests.conftest import ROOT, SAMPLES
from tests.harness import sample


def _script() -> object:
    spec = importlib.util.spec_from_file_location(
        "code_sets_script", ROOT / "scripts" / "code_sets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_data_names_its_source_and_holds_the_sets_the_script_writes() -> None:
    script = _script()
    data = code_sets()
    assert data.source["integrity"] == script.INTEGRITY  # type: ignore[attr-defined]
    assert "iso20022.org" in data.source["publication"]
    assert set(data.sets) == set(script.SETS)  # type: ignore[attr-defined]
    assert all(len(codes) >= 10 for codes in data.sets.values())
    # Spot checks against the publication.
    assert "PECR" in data.sets["ExternalInvestigationExecutionConfirmation1Code"]
    assert "ACSC" in data.sets["ExternalPaymentTransactionStatus1Code"]
    assert "PART" in data.sets["ExternalPaymentGroupStatus1Code"]
    assert "DUPL" in data.sets["ExternalCancellationReason1Code"]
    assert "AC04" in data.sets["ExternalReturnReason1Code"]


def test_every_code_list_a_type_checks_is_a_set_of_the_data() -> None:
    declared = {name for t in TYPES for names in t.codes.values() for name in names}
    assert declared and declared <= set(code_sets().sets)
    # Each declared path exists in the official message (a typo would check nothing).
    for t in TYPES:
        for path in t.codes:
            assert path.split("/")[0] in _official_children(t.msg_def, t.root), (t.msg_def, path)


def _official_children(msg_def: str, root: str) -> set[str]:
    from lxml import etree

    xsd = etree.parse(str(ROOT.parent / "shared" / "iso20022" / "xsd" / f"{msg_def}.xsd"))
    return {el.get("name") for el in xsd.iter("{http://www.w3.org/2001/XMLSchema}element")}


def _held_traffic() -> list[Path]:
    """Every message the tests hold: the samples (rich and the RTGS's too) and the golden cases'
    inputs and outputs."""
    found = sorted(SAMPLES.rglob("*.xml"))
    found += sorted((ROOT / "tests" / "golden").rglob("*.xml"))
    return found


def test_every_code_in_the_traffic_the_tests_hold_is_known() -> None:
    checked = 0
    for path in _held_traffic():
        msg = read_message(path.read_bytes())
        kind = BY_DEF.get(msg.msg_def)
        if kind is None or not kind.codes:
            continue
        assert unknown(one(msg.doc_map, kind.root) or {}, kind.codes) is None, path
        checked += 1
    assert checked >= 8


def test_every_code_in_the_adapted_corpus_is_known(config: Config) -> None:
    directory = Translator(config).directory.current()
    examples = corpus.examples(corpus.ANSWERS)
    checked = 0
    for example in examples:
        data = corpus.adapt_answer(
            example.path.read_bytes(),
            "offshore",
            config,
            directory,
            "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",
        )
        msg = read_message(data)
        kind = BY_DEF[msg.msg_def]
        assert unknown(one(msg.doc_map, kind.root) or {}, kind.codes) is None, example.path
        checked += 1
    assert examples and checked == len(examples)


def test_a_partially_executed_cancellation_is_carried_back_with_no_effect(config: Config) -> None:
    """PECR was refused by the hand-kept list ("not an ISO 20022 investigation status code")."""
    t = Translator(config)
    assert t.process(sample("onshore", "pacs.008.001.08"), "onshore").accepted
    assert t.process(sample("onshore", "camt.056.001.08"), "onshore").accepted
    partial = sample("offshore", "camt.029.001.09").replace(
        b"<Conf>CNCL</Conf>", b"<Conf>PECR</Conf>"
    )
    out = t.process(partial, "offshore")
    assert out.accepted, out.error
    assert out.voids_open == () and out.destination == "onshore"
    assert b"<Conf>PECR</Conf>" in out.message


@pytest.mark.parametrize(
    ("side", "msg_def", "old", "path"),
    [
        ("offshore", "pacs.004.001.09", b"<Cd>AC04</Cd>", "TxInf/RtrRsnInf/Rsn/Cd"),
        ("onshore", "camt.056.001.08", b"<Cd>DUPL</Cd>", "Undrlyg/TxInf/CxlRsnInf/Rsn/Cd"),
    ],
)
def test_a_reason_outside_its_iso_set_is_refused_by_name(
    config: Config, side: str, msg_def: str, old: bytes, path: str
) -> None:
    t = Translator(config)
    assert t.process(sample("onshore", "pacs.008.001.08"), "onshore").accepted
    data = sample(side, msg_def)
    assert old in data
    out = t.process(data.replace(old, b"<Cd>ZZ99</Cd>"), side)  # type: ignore[arg-type]
    assert not out.accepted and out.error is not None and out.error.code == "NARR"
    assert f"{path} ZZ99 is not an ISO 20022" in out.error.detail
