"""No input its profile accepts makes the gateway fail: every registered type's decoding and
translation, over valid variants hypothesis makes of the golden cases.

A variant rewrites values in other lexical forms of their XML Schema types: white space
around a collapsed token, a sign or leading zeros on a number, a time zone on a date, a
fraction or another offset on a date-time, 1/0 for a boolean. Only variants the source profile
accepts are kept. Each must be translated or refused with a reason (a `MessageError`), never
crash and never be answered as the gateway's own failure.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config import Config
from gateway.correlations import MemoryCorrelations
from gateway.iso20022 import errors
from gateway.iso20022.reader import read_message
from gateway.translation import Outcome, Translator
from tests.conftest import ROOT
from tests.test_golden import CASES, FIXED, case_input

_translator = Translator(Config(), clock=lambda: FIXED).prepare()

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z)"
)


def forms(value: str) -> list[str]:
    """Other lexical forms of `value` in the XML Schema types it may have."""
    out = [f" {value} ", f"\n\t{value}\n"]
    if _DECIMAL.fullmatch(value):
        out += [f"+{value}", f"0{value}", f"00{value}"]
        if "." in value:
            out += [f"{value}0", value.rstrip("0") or "0"]
        else:
            out += [f"{value}.0", f"{value}."]
    if _DATE.fullmatch(value):
        out += [f"{value}Z", f"{value}+08:00", f"{value}-11:00", f"{value}+14:00"]
    if _DATETIME.fullmatch(value):
        base, zone = value[:19], value[19:]
        out += [f"{base}.5{zone}", f"{base}.000001{zone}", f"{base}Z", f"{base}-00:00"]
    if value in ("true", "false"):
        out.append("1" if value == "true" else "0")
    return out


_LEAF = re.compile(rb"<([A-Za-z]+)( [^>]*)?>([^<]+)</\1>")


@st.composite
def variant(draw: st.DrawFn, data: bytes) -> bytes:
    leaves = [m for m in _LEAF.finditer(data) if m.group(3).strip()]
    chosen = draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=3, unique_by=id))
    out = data
    for m in sorted(chosen, key=lambda m: m.start(3), reverse=True):
        value = m.group(3).decode("utf-8")
        new = draw(st.sampled_from(forms(value)))
        out = out[: m.start(3)] + new.encode("utf-8") + out[m.end(3) :]
    return out


def outcome(case: dict[str, object], data: bytes) -> Outcome:
    correlations = MemoryCorrelations()
    originals = case.get("originals", [])
    assert isinstance(originals, list)
    for original in originals:
        side = case.get("originals_from", "offshore" if case["from"] == "onshore" else "onshore")
        assert side in ("onshore", "offshore")
        _translator.process((ROOT / original).read_bytes(), side, correlations)
    source = case["from"]
    assert source in ("onshore", "offshore")
    return _translator.process(data, source, correlations)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_valid_variant_of_any_message_makes_the_gateway_fail(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    plain = case_input(case)
    changed = data.draw(variant(plain), label="variant")
    source = case["from"]
    try:
        msg = read_message(changed)
        _translator.profiles[source].validate(msg)
        valid = True
    except errors.MessageError:
        valid = False  # not a valid variant: the profile refuses it, as it should
    event(f"valid variant: {valid}")
    got = outcome(case, changed)  # raises if anything but a MessageError escapes
    assert not isinstance(got.error, errors.InternalError), got.error
    # An invalid variant is refused whole, never accepted (nor does it crash anything).
    assert valid or not got.accepted
