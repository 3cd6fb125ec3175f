"""One message, one meaning: any spelling of a message gives the outcome of its plain form.

Hypothesis takes any golden case (every registered type, both sides, accepted and refused;
tests/golden/cases.toml), as its sender signs it, and respells it the way an attacker can
without touching what the signature covers: comments, processing instructions, CDATA sections
and character references inside any value or between elements. The outcome (decision, reason,
keys, obligations, correlation, voids, and the output as canonical XML) must be the plain
message's, or the message is refused for its signature (a PI is part of what C14N signs):
never a third outcome, never a crash. With signatures off, it must be the plain outcome,
always.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.iso20022 import errors
from gateway.signatures import DS
from gateway.translation import Outcome
from tests.conftest import ROOT
from tests.golden_gateway import Gateway, golden_gateway
from tests.test_golden import CASES, case_input


def canonical_output(data: bytes) -> bytes:
    """The output as canonical XML, without the gateway's signature (ECDSA is randomised)."""
    if not data:
        return b""
    root = etree.fromstring(data)
    for signature in root.iter(f"{{{DS}}}Signature"):
        parent = signature.getparent()
        assert parent is not None
        parent.remove(signature)
    return etree.tostring(root, method="c14n", exclusive=True)


def meaning(o: Outcome) -> tuple[object, ...]:
    """Everything an outcome decides, and what it sends, as compared between spellings."""
    return (
        o.accepted,
        o.destination,
        o.msg_def,
        o.keys,
        (o.error.code, o.error.detail, o.error.ids) if o.error else None,
        o.obligations,
        o.correlation,
        o.cancels,
        o.voids_open,
        o.settlement,
        o.held_cancel,
        canonical_output(o.message),
        canonical_output(o.held_answer),
    )


# Text between tags: values, and the white space between elements.
_TEXT = re.compile(rb">([^<]*)<")


@st.composite
def respelled(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to four of its text runs respelled, each in one way."""
    # From the root element on: the prolog is not the message (and takes no PI).
    root_start = data.index(b"<BizMsg") if b"<BizMsg" in data else data.index(b"<Document")
    comments = [m.span() for m in re.finditer(rb"<!--.*?-->", data, re.S)]
    spans = [
        m.span(1)
        for m in _TEXT.finditer(data, root_start)
        if not any(a <= m.start(1) < b for a, b in comments)  # a comment's own text
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(spans))), min_size=1, max_size=4, unique=True))
    out = data
    for index in sorted(chosen, reverse=True):  # from the end: earlier offsets stay valid
        start, end = spans[index]
        text = out[start:end].decode("utf-8")
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["comment", "pi", "cdata", "charref"]))
        if "&" in text:
            kind = draw(st.sampled_from(["comment", "pi"]))  # never inside an entity reference
        if kind == "comment":
            new = (
                text[:at] + "<!--" + draw(st.sampled_from(["", " x ", "note"])) + "-->" + text[at:]
            )
        elif kind == "pi":
            new = text[:at] + "<?spell it?>" + text[at:]
        elif kind == "cdata":
            until = draw(st.integers(at, len(text)))
            new = text[:at] + "<![CDATA[" + text[at:until] + "]]>" + text[until:]
        else:
            if at == len(text):
                continue
            new = text[:at] + f"&#{ord(text[at])};" + text[at + 1 :]
        out = out[:start] + new.encode("utf-8") + out[end:]
    return out


@pytest.fixture(scope="module", params=["signed", "unsigned"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    return golden_gateway(tmp_path_factory.mktemp("spelling"), request.param == "signed")


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_any_spelling_of_a_message_has_the_plain_messages_outcome(
    gateway: Gateway, data: st.DataObject
) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    plain = gateway.as_sent(case_input(case))
    expected = meaning(gateway.outcome(case, plain))
    variant = data.draw(respelled(plain), label="variant")
    got = gateway.outcome(case, variant)
    if meaning(got) == expected:
        return
    # The one other outcome: a signature that no longer verifies (a PI is signed content,
    # and so is the signature's own text).
    assert gateway.signatures, f"unsigned: a spelling changed the outcome: {got.error}"
    assert isinstance(got.error, errors.SignatureRefused), got.error
    assert got.error.code == "DS0A", got.error
    assert not got.accepted and got.obligations == () and got.correlation is None


def test_a_comment_in_a_signed_uetr_is_the_same_payment(tmp_path: Path) -> None:
    """The attack as it was found: a genuine signed payment, sent again with a comment in its
    UETR and BizMsgIdr, reads as the same message (same keys, same fingerprint)."""
    from gateway.idempotency import extract_keys, fingerprint

    gw = golden_gateway(tmp_path, signatures=True)
    plain = gw.as_sent((ROOT / "samples/onshore/pacs.008.001.08.xml").read_bytes())
    spelled = plain.replace(b"0b7c3f2e-", b"0b7c3f2e-<!---->").replace(
        b"ON-BIZ-P8-", b"ON-BIZ-<!---->P8-"
    )
    assert spelled != plain
    a = gw.translator.read(plain, "onshore")
    b = gw.translator.read(spelled, "onshore")
    assert extract_keys(a) == extract_keys(b)
    assert extract_keys(b).message == "msg:HPCBCNSHXXX:ON-BIZ-P8-0001"
    assert fingerprint(a) == fingerprint(b)
    case = {"from": "onshore"}
    assert meaning(gw.outcome(case, spelled)) == meaning(gw.outcome(case, plain))
