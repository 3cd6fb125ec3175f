"""What decoding and encoding need to know, and the pieces every message family shares:
agents (BIC + the dialect's clearing member id), customers, accounts, amounts, free text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from lxml import etree

from gateway.canonical import Account, Address, Agent, Customer, Money, Supplementary
from gateway.charset import CharsetPolicy, CharsetRefusal, is_latin
from gateway.directory import Directory, Flow, Participant
from gateway.iso20022 import errors
from gateway.iso20022.reader import BusinessMessage, refusal
from gateway.iso20022.tree import (
    Leaf,
    Map,
    Node,
    Raw,
    escape_text,
    many,
    one,
    render_text,
    txt,
)
from gateway.sides import Side

SUPPLEMENTARY_NS = "urn:connect-gateway:supplementary:1"


@dataclass(frozen=True)
class Dialect:
    """The rules that differ between the two sides (defined by each adapter)."""

    side: Side
    clearing_system: str  # ClrSysId/Cd of agents: CNAPS onshore, HKNCC offshore
    latin_only: bool  # free text restricted to printable Latin
    # Bond Connect: the flow of the securities instructions this side sends (its investors
    # hold the other side's bonds through the other side's nominee accounts).
    securities_flow: Flow


@dataclass
class DecodeContext:
    dialect: Dialect
    directory: Directory
    msg: BusinessMessage

    def refuse(self, reason: str, detail: str) -> errors.Refusal:
        return refusal(self.msg, reason, detail)

    def agent(self, m: Map | None, role: str) -> Agent:
        """A scheme agent (InstgAgt, InstdAgt): a participant, by BIC, member id or both."""
        fin = one(m, "FinInstnId")
        participant = scheme_participant(
            self.directory,
            # The member id's own clearing system, as named (the dialect's by default).
            txt(fin, "ClrSysMmbId", "ClrSysId", "Cd") or self.dialect.clearing_system,
            txt(fin, "BICFI"),
            txt(fin, "ClrSysMmbId", "MmbId"),
            role,
            self.refuse,
        )
        return Agent(participant.bic, txt(fin, "LEI"), txt(fin, "Nm"))

    def other_agent(self, m: Map | None) -> Agent | None:
        """An agent outside the scheme (debtor's or creditor's agent, a correspondent): carried
        as it came, whoever it is; its BIC, if any, is kept for the canonical model."""
        if m is None:
            return None
        fin = one(m, "FinInstnId")
        return Agent(txt(fin, "BICFI") or "", txt(fin, "LEI"), txt(fin, "Nm"))


def scheme_participant(
    directory: Directory,
    clearing_system: str,
    bic: str | None,
    member: str | None,
    role: str,
    refuse: Callable[[str, str], errors.Refusal],
) -> Participant:
    """The participant a scheme agent names: by BIC, by member id in the dialect's clearing
    system, or both (then they must agree). RC01 otherwise."""
    by_bic = directory.participant(bic) if bic else None
    by_member = directory.by_member_id(clearing_system, member) if member else None
    if bic and by_bic is None:
        raise refuse("RC01", f"{role} {bic} is not a participant of the connect scheme")
    if member and by_member is None:
        if by_bic is not None:
            raise refuse(
                "RC01",
                f"{role} {bic}: {clearing_system} member id {member} does not belong to it "
                f"(directory: {by_bic.member_id(clearing_system)})",
            )
        raise refuse("RC01", f"{role}: {clearing_system} member id {member} is not a participant")
    if by_bic is not None and by_member is not None and by_bic is not by_member:
        raise refuse(
            "RC01",
            f"{role} {bic}: {clearing_system} member id {member} does not belong to it "
            f"(directory: {by_bic.member_id(clearing_system)})",
        )
    found = by_bic or by_member
    if found is None:
        raise refuse("RC01", f"{role} names no participant: a BIC or a member id is required")
    return found


def decode_amount(value: Leaf | None) -> Money:
    assert value is not None  # the profile makes every decoded amount mandatory where read
    return Money(Decimal(value.text), value.attrib["Ccy"])


def decode_customer(m: Map | None) -> Customer:
    adr = one(m, "PstlAdr")
    address = None
    if adr is not None:
        lines = tuple(x for x in many(adr, "AdrLine") if isinstance(x, str))
        address = Address(txt(adr, "TwnNm"), txt(adr, "Ctry"), lines)
    org = one(m, "Id", "OrgId")
    return Customer(
        txt(m, "Nm") or "", address, txt(org, "AnyBIC"), txt(org, "LEI"), txt(m, "CtryOfRes")
    )


def decode_account(m: Map | None) -> Account | None:
    if m is None:
        return None
    return Account(txt(m, "Id", "Othr", "Id") or "", txt(m, "Ccy"))


def decode_supplementary(items: list[Node]) -> tuple[Supplementary, ...]:
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        envelope = item.get("Envlp", [None])[0]
        inner = next(iter(envelope), None) if isinstance(envelope, etree._Element) else None
        if inner is None:
            continue
        # Detached and cleaned: serialising in place would carry the enclosing document's
        # namespace declarations into the partner's XML.
        detached = copy.deepcopy(inner)
        etree.cleanup_namespaces(detached)
        out.append(Supplementary(txt(item, "PlcAndNm"), etree.tostring(detached)))
    return tuple(out)


def amount_leaf(money: Money | None) -> Leaf | None:
    return None if money is None else Leaf(str(money.amount), {"Ccy": money.currency})


@dataclass
class EncodeContext:
    dialect: Dialect
    directory: Directory
    charset: CharsetPolicy
    # The inbound message, for refusals; None for what the gateway issues itself (pacs.029).
    msg: BusinessMessage | None
    notes: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (field, original text)

    def refuse(self, reason: str, detail: str) -> errors.Refusal:
        if self.msg is None:
            return errors.Refusal(detail, reason=reason)
        return refusal(self.msg, reason, detail)

    def text(self, field_name: str, value: str | None, max_len: int) -> str | None:
        """Free text for this dialect: unchanged onshore; fitted to Latin offshore."""
        if value is None or not self.dialect.latin_only:
            return value
        try:
            fitted = self.charset.fit(field_name, value, max_len)
        except CharsetRefusal as exc:
            raise self.refuse(
                "NARR", f"cannot carry {exc} in the {self.dialect.side} dialect"
            ) from None
        if fitted.changed:
            self.notes.append(f"{field_name}: {fitted.how}")
            if self.charset.policy(field_name).keep_original:
                self.kept.append((field_name, value))
        if fitted.truncated_from is not None:
            self.notes.append(
                f"{field_name}: truncated from {fitted.truncated_from} to "
                f"{len(fitted.text)} characters (policy allows it)"
            )
        return fitted.text

    def agent(self, agent: Agent | None, role: str) -> list[tuple[str, object]] | None:
        if agent is None:
            return None
        # A payment names four agents, all participants: rendered once per directory version.
        # Only when nothing is fitted (no name, or one every dialect carries as it is), so a
        # cached agent never hides a transliteration note or a kept original.
        name = agent.name
        plain = name is None or (is_latin(name) and len(name) <= 140)
        key = (self.dialect.clearing_system, agent.bic, agent.lei, name)
        if plain:
            cached = self.directory.encoded_agents.get(key)
            if cached is not None:
                return [("FinInstnId", Raw(cached))]
        participant = self.directory.participant(agent.bic)
        if participant is None:
            raise self.refuse("RC01", f"{role} {agent.bic} is not a participant")
        spec: list[tuple[str, object]] = [
            ("BICFI", agent.bic),
            (
                "ClrSysMmbId",
                [
                    ("ClrSysId", [("Cd", self.dialect.clearing_system)]),
                    ("MmbId", participant.member_id(self.dialect.clearing_system)),
                ],
            ),
            ("LEI", agent.lei),
            ("Nm", self.text("agent.name", name, 140)),
        ]
        if not plain:
            return [("FinInstnId", spec)]
        out: list[str] = []
        render_text(spec, out)
        if len(self.directory.encoded_agents) >= 10_000:  # bounded: BIC x LEI x name
            self.directory.encoded_agents.clear()
        self.directory.encoded_agents[key] = text = "".join(out)
        return [("FinInstnId", Raw(text))]

    def customer(self, c: Customer, role: str) -> list[tuple[str, object]]:
        adr = c.address
        address = None
        if adr is not None:
            address = [
                ("TwnNm", self.text(f"{role}.address", adr.town, 35)),
                ("Ctry", adr.country),
                *(("AdrLine", self.text(f"{role}.address", line, 70)) for line in adr.lines),
            ]
        org = None
        if c.bic or c.lei:
            org = [("OrgId", [("AnyBIC", c.bic), ("LEI", c.lei)])]
        return [
            ("Nm", self.text(f"{role}.name", c.name, 140)),
            ("PstlAdr", address),
            ("Id", org),
            ("CtryOfRes", c.country_of_residence),
        ]

    def supplementary(self, kept_before: tuple[Supplementary, ...]) -> list[tuple[str, object]]:
        """SplmtryData blocks: those received, then the originals this encoding replaced."""
        blocks: list[tuple[str, object]] = []
        for s in kept_before:
            blocks.append(
                ("SplmtryData", [("PlcAndNm", s.place), ("Envlp", etree.fromstring(s.xml))])
            )
        for field_name, original in self.kept:
            # As text: what lxml would serialise for this element, without building it.
            el = Raw(f'<OrgnlTxt xmlns="{SUPPLEMENTARY_NS}">{escape_text(original)}</OrgnlTxt>')
            blocks.append(
                ("SplmtryData", [("PlcAndNm", f"connect-gateway:{field_name}"), ("Envlp", el)])
            )
        return blocks


def account_spec(a: Account | None) -> list[tuple[str, object]] | None:
    if a is None:
        return None
    return [("Id", [("Othr", [("Id", a.id)])]), ("Ccy", a.currency)]
