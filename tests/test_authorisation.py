"""Every message is authorised by role, whatever identifiers it uses, signatures on or off.

Hypothesis takes any golden case the gateway accepts (every type a side may send, both
sides) and changes who says it: AppHdr Fr becomes any participant, depository or system of
the directory, named by BIC, by BIC and member id, or by a BIC and another's member id; the
party the message itself names in its role (InstgAgt, Assgnr, the account owner) becomes any
participant, named by BIC, member id, both, or a mismatch. The message is then signed by the
new Fr (signatures on) or not (off).

The reference model says who is entitled: for an instruction, the party it names as its
instructing party, which must be a participant of the side it comes from; for anything
else, the party the original's correlation entitles, which is the case's own genuine sender.
Fr must be that party, or send for it (`sends_for`); a named party must be it; mismatched
identifiers are refused. The gateway must accept exactly what the model accepts, and a
refusal has no effect. The RTGS's confirmation of a cycle: its configured system only.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.adapters import dialect
from gateway.correlations import Correlation
from gateway.iso20022.reader import read_message
from gateway.messages.registry import message_type
from gateway.sides import Side
from tests.conftest import ROOT
from tests.golden_gateway import (
    SAMPLE_DIRECTORY,
    SENDS_FOR,
    SIGNATORIES,
    Gateway,
    golden_gateway,
    sender_of,
)
from tests.test_golden import CASES, case_input

# Accepted with the default configuration (one case rolls a date by a policy of its own).
ACCEPTED = [c for c in CASES if c["expect"] == "accepted" and "settlement_date_policy" not in c]
PARTICIPANTS = tuple(SAMPLE_DIRECTORY.participants)
HEAD = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
RTGS = "HKICHKHHXXX"  # the offshore system (settlement.rtgs_side = offshore)


@pytest.fixture(scope="module", params=["signed", "unsigned"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    return golden_gateway(tmp_path_factory.mktemp("authorisation"), request.param == "signed")


def may_send_for(sender: str, entitled: str) -> bool:
    return sender == entitled or entitled in SENDS_FOR.get(sender, ())


def _member(bic: str, side: Side) -> tuple[str, str]:
    system = dialect(side).clearing_system
    return system, SAMPLE_DIRECTORY.participants[bic].member_id(system)


def _identify(fin: etree._Element, bic: str, form: str, side: Side, other: str) -> None:
    """FinInstnId `fin` names `bic` by `form`: bic, member, both, or mismatch (BIC of `bic`,
    member id of `other`)."""
    ns = etree.QName(fin).namespace
    for name in ("BICFI", "ClrSysMmbId"):
        for old in fin.findall(f"{{{ns}}}{name}"):
            fin.remove(old)
    new = []
    if form in ("bic", "both", "mismatch"):
        el = etree.Element(f"{{{ns}}}BICFI")
        el.text = bic
        new.append(el)
    if form in ("member", "both", "mismatch") and bic in SAMPLE_DIRECTORY.participants:
        system, member = _member(other if form == "mismatch" else bic, side)
        mmb = etree.Element(f"{{{ns}}}ClrSysMmbId")
        etree.SubElement(etree.SubElement(mmb, f"{{{ns}}}ClrSysId"), f"{{{ns}}}Cd").text = system
        etree.SubElement(mmb, f"{{{ns}}}MmbId").text = member
        new.append(mmb)
    for el in reversed(new):
        fin.insert(0, el)


def _named_path(msg_def: str) -> tuple[str, bool] | None:
    """Where a type names its acting party below Document (from the registry), and whether
    it is an agent (BIC and/or member id) rather than a BIC alone."""
    path = message_type(msg_def).path("agent")
    if path is None:
        return None
    if path.endswith("/BICFI"):
        return path.removesuffix("/BICFI"), True
    return path, False


def _find(root: etree._Element, below_document: str) -> etree._Element | None:
    document = root[-1] if etree.QName(root).localname != "Document" else root
    steps = "/".join(f"*[local-name()='{s}']" for s in below_document.split("/"))
    found = document.xpath(steps)
    return found[0] if isinstance(found, list) and found else None  # type: ignore[return-value]


@st.composite
def respoken(draw: st.DrawFn, case: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The case's message said by someone else, and what the model needs to know of it."""
    data = case_input(case)
    side: Side = case["from"]
    msg_def = read_message(data).msg_def
    root = etree.fromstring(data)
    genuine = sender_of(data)
    assert genuine is not None
    # Half the time the genuine sender (or one sending for it): refusals are the easy half.
    sender = draw(st.sampled_from(SIGNATORIES) | st.sampled_from([genuine, *SENDS_FOR]), label="Fr")
    fr_form = draw(st.sampled_from(["bic", "both", "mismatch"]), label="Fr named by")
    other = draw(st.sampled_from([p for p in PARTICIPANTS if p != sender]), label="other")
    fin = root.find(f"{{{HEAD}}}AppHdr/{{{HEAD}}}Fr/{{{HEAD}}}FIId/{{{HEAD}}}FinInstnId")
    assert fin is not None
    _identify(fin, sender, fr_form, side, other)
    fr_mismatch = fr_form == "mismatch" and sender in SAMPLE_DIRECTORY.participants

    named_at = _named_path(msg_def)
    element = _find(root, named_at[0]) if named_at else None
    party, party_form = None, None
    if element is not None and named_at is not None and draw(st.booleans(), label="rename"):
        party = draw(st.sampled_from(PARTICIPANTS) | st.sampled_from([sender, genuine]))
        if party not in SAMPLE_DIRECTORY.participants:
            party = genuine if genuine in SAMPLE_DIRECTORY.participants else PARTICIPANTS[0]
        if named_at[1]:
            party_form = draw(st.sampled_from(["bic", "member", "both", "mismatch"]))
            other = draw(st.sampled_from([p for p in PARTICIPANTS if p != party]))
            _identify(element, party, party_form, side, other)
        else:
            element.text = party  # an account owner: AnyBIC
    genuine_named = None
    if element is not None:
        plain = _find(etree.fromstring(data), named_at[0]) if named_at else None
        assert plain is not None
        if named_at and named_at[1]:
            member = plain.findtext("{*}ClrSysMmbId/{*}MmbId")
            by_member = SAMPLE_DIRECTORY.by_member_id(dialect(side).clearing_system, member or "")
            genuine_named = plain.findtext("{*}BICFI") or (by_member.bic if by_member else None)
        else:
            genuine_named = plain.text
    changed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    facts = {
        "sender": sender,
        "fr_mismatch": fr_mismatch,
        "party": party,
        "party_mismatch": party_form == "mismatch",
        "genuine_sender": sender_of(data),
        "genuine_named": genuine_named,
        "role": message_type(msg_def).sender,
        "side": side,
    }
    return changed, facts


def entitled_and_allowed(facts: dict[str, Any]) -> tuple[str | None, bool]:
    """The reference model: who is entitled, and whether this message gets through."""
    if facts["fr_mismatch"] or facts["party_mismatch"]:
        return None, False  # two identifiers of one party naming two participants
    named = facts["party"] or facts["genuine_named"]
    if facts["role"] == "instructing":
        entitled = named
        participant = SAMPLE_DIRECTORY.participants.get(entitled or "")
        allowed = participant is not None and participant.side == facts["side"]
    else:
        entitled = facts["genuine_sender"]  # the samples' answers come from their entitled party
        allowed = facts["party"] is None or facts["party"] == entitled
    assert entitled is not None
    return entitled, allowed and may_send_for(facts["sender"], entitled)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_only_the_entitled_sender_gets_through(gateway: Gateway, data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(ACCEPTED), label="case")
    message, facts = data.draw(respoken(case), label="message")
    entitled, allowed = entitled_and_allowed(facts)
    event(f"{facts['role']}: {'allowed' if allowed else 'refused'}")
    out = gateway.outcome(case, gateway.signed_by(message, facts["sender"]))
    if not out.accepted:
        assert out.error is not None
        event(f"refused {out.error.code}")
    assert out.accepted == allowed, (facts, out.error)
    if out.accepted:
        for obligation in out.obligations:
            if facts["role"] == "instructing" and not obligation.reference.startswith("sese:"):
                assert obligation.payer == entitled  # the payer is who may instruct for it
    else:
        assert out.error is not None
        assert out.obligations == () and out.correlation is None
        assert out.cancels == () and out.voids_open == () and out.settlement is None


CONFIRMATION = ROOT / "samples" / "offshore" / "rtgs" / "pacs.002.001.10-settles-CNY-000001.xml"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sender=st.sampled_from(SIGNATORIES))
def test_only_the_rtgs_confirms_a_cycle(
    tmp_path_factory: pytest.TempPathFactory, sender: str
) -> None:
    gateway = _rtgs_gateway(tmp_path_factory)
    data = CONFIRMATION.read_bytes().replace(
        b"<BICFI>HKICHKHHXXX</BICFI>", f"<BICFI>{sender}</BICFI>".encode(), 1
    )
    root = read_message(data)
    original = root.doc_text("FIToFIPmtStsRpt/OrgnlGrpInfAndSts/OrgnlMsgId") or ""
    instruction = Correlation(
        key="cycle:CNY-000001:pacs.029",
        source="offshore",
        sender_bic=None,
        biz_msg_idr=None,
        msg_id=original,
        msg_def="pacs.029.001.01",
        created=None,
        outbound_biz_msg_idr="GW-SETTLE",
        outbound_msg_id=original,
        instructing="SHHKCNSHGWY",
        receiver=RTGS,
    )
    out = gateway.outcome({"from": "offshore"}, gateway.signed_by(data, sender), (instruction,))
    assert out.accepted == (sender == RTGS), out.error
    assert (out.settlement is not None) == (sender == RTGS)


_rtgs: dict[str, Gateway] = {}


def _rtgs_gateway(factory: pytest.TempPathFactory) -> Gateway:
    if "gw" not in _rtgs:
        _rtgs["gw"] = golden_gateway(factory.mktemp("rtgs"), signatures=True)
    return _rtgs["gw"]


def test_a_member_id_is_read_in_the_clearing_system_it_names() -> None:
    """A member id is resolved in the system its ClrSysId/Cd names (the dialect's when none is
    given), never assumed to be the dialect's: an operator's profile may allow another."""
    from gateway.codec.context import scheme_participant
    from gateway.iso20022 import errors

    def refuse(reason: str, detail: str) -> errors.Refusal:
        return errors.Refusal(detail, reason=reason)

    def named(system: str, member: str, bic: str | None = None) -> str:
        return scheme_participant(SAMPLE_DIRECTORY, system, bic, member, "InstgAgt", refuse).bic

    assert named("CNAPS", "313290012345") == named("HKNCC", "901") == "HPCBCNSHXXX"
    with pytest.raises(errors.Refusal) as caught:
        named("HKNCC", "313290012345")  # a CNAPS code read as HKNCC names nobody
    assert caught.value.code == "RC01"
    with pytest.raises(errors.Refusal):
        named("HKNCC", "902", bic="HPCBCNSHXXX")  # JADB's HKNCC code beside HPCB's BIC
