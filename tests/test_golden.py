"""Golden translation cases (tests/golden/cases.toml): input -> expected output, both ways.

Each output is also valid against the target profile (the translator checks that itself; so
does this test, independently) and, all together, against the official ISO 20022 schemas.
"""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import UTC8
from gateway.config import Config, TranslationSection
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.sides import other_side
from gateway.translation import Outcome, Translator
from tests.conformance import assert_officially_valid
from tests.conftest import ROOT, SHARED

GOLDEN = Path(__file__).with_name("golden")
CASES: list[dict[str, Any]] = tomllib.loads((GOLDEN / "cases.toml").read_text())["case"]
FIXED = datetime(2026, 11, 20, 10, 30, 0, tzinfo=UTC8)


def case_input(case: dict[str, Any]) -> bytes:
    data = (ROOT / case["input"]).read_text(encoding="utf-8")
    for edit in case.get("replace", []):
        old, new = edit[0], edit[1]
        assert old in data, f"{case['name']}: anchor {old!r} not in {case['input']}"
        data = data.replace(old, new, *edit[2:])
    return data.encode("utf-8")


def run_case(case: dict[str, Any]) -> Outcome:
    config = Config()
    if "settlement_date_policy" in case:
        config = dataclasses.replace(
            config,
            translation=TranslationSection(settlement_date_policy=case["settlement_date_policy"]),
        )
    translator = Translator(config, clock=lambda: FIXED)
    # Originals come from the other side (what an answer answers), or from the case's own
    # side when it says so (a cancellation request names its sender's own payment).
    for original in case.get("originals", []):
        side = case.get("originals_from", other_side(case["from"]))
        primed = translator.process((ROOT / original).read_bytes(), side)
        assert primed.accepted, primed.error
    return translator.process(case_input(case), case["from"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(
    case: dict[str, Any], profiles: dict[str, ProfileSet], request: pytest.FixtureRequest
) -> None:
    outcome = run_case(case)
    if case["expect"] == "accepted":
        assert outcome.accepted, outcome.error
        # Forwarded to the other side, or answered by the gateway (a status enquiry).
        back = case.get("answered_by") == "gateway"
        assert outcome.destination == (case["from"] if back else other_side(case["from"]))
    else:
        assert not outcome.accepted, "expected a reject"
        assert outcome.error is not None and outcome.error.code == case["expect"], outcome.error
        assert outcome.destination == case["from"]
    profiles[outcome.destination].validate(read_message(outcome.message))
    expected = GOLDEN / "expected" / f"{case['name']}.xml"
    if request.config.getoption("--update-golden"):
        expected.write_bytes(outcome.message)
    assert expected.exists(), f"no golden file: run with --update-golden and review {expected}"
    assert outcome.message.decode() == expected.read_text(encoding="utf-8")


@pytest.mark.skipif(not (SHARED / "tools").is_dir(), reason="../shared not present")
def test_every_golden_output_is_officially_valid() -> None:
    assert_officially_valid(*(run_case(case).message for case in CASES))
