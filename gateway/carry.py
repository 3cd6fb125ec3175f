"""A payment message carried whole into the other dialect: the document is copied, the parts
the dialects differ in are rewritten, and everything else goes through as it came.

Rewritten, and nothing else:
- the scheme agents (InstgAgt, InstdAgt of the group and the transaction): BIC and member id
  in the target's clearing system, from the directory; their LEI, name, address, branch and
  other identifications are carried;
- a participant's member id anywhere else (a debtor's or creditor's agent that is also a
  participant): the target's clearing system and member id; another bank's member id in a
  real clearing system is carried as it is;
- the group header's MsgId and CreDtTm (a case's Assgnmt/Id and CreDtTm): the gateway issues
  the message;
- in an answer (pacs.002, pacs.004, camt.029), its references to the original (OrgnlGrpInf):
  the ids the original's sender knows, not the ones the gateway gave the other side; in a
  cancellation request (camt.056), the other way round: the ids the gateway gave the payment;
- the interbank settlement date, when the settlement-date policy rolled it;
- text the target's character set cannot carry: fitted by the charset policy
  (data/charset-policy.toml), each change noted, the original kept in SplmtryData where the
  policy says so; text it cannot fit refuses the message, naming the field.

Agents outside the scheme, parties, addresses, accounts, remittance, regulatory reporting,
charges, the underlying customer transfer of a cover payment: carried unchanged. The caller
validates the result against the target profile (`issuing.issue_document`); a document that
fails is refused with the profile's error, never sent, and never trimmed to fit.

Pure: no I/O, the input message untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from gateway.canonical import OriginalGroup
from gateway.charset import CharsetPolicy, CharsetRefusal
from gateway.codec.context import SUPPLEMENTARY_NS, Dialect, scheme_participant
from gateway.directory import Directory
from gateway.iso20022.reader import BusinessMessage, refusal
from gateway.iso20022.tree import clone

# The elements that hold the one transaction, by message family: under the message root, or
# under its underlying-transaction block (camt.056 Undrlyg, camt.029 CxlDtls).
TRANSACTION = ("CdtTrfTxInf", "TxInfAndSts", "TxInf")
UNDERLYING = ("Undrlyg", "CxlDtls")
# Scheme agents: the instructing and instructed agents, and a case's assigner and assignee
# (an agent, or a party that is an agent: Party40Choice/Agt).
SCHEME_AGENTS = ("InstgAgt", "InstdAgt", "Assgnr", "Assgne")
ORIGINAL_GROUPS = ("OrgnlGrpInfAndSts", "OrgnlGrpInf")

# Which charset-policy field a text element belongs to: the first (path fragment, field)
# whose fragment the element's path contains. Anything else: the policy's default.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("FinInstnId/Nm", "agent.name"),
    ("FinInstnId/PstlAdr/", "agent.address"),
    ("/Dbtr/Nm", "debtor.name"),
    ("/UltmtDbtr/Nm", "debtor.name"),
    ("/InitgPty/Nm", "debtor.name"),
    ("/Dbtr/PstlAdr/", "debtor.address"),
    ("/UltmtDbtr/PstlAdr/", "debtor.address"),
    ("/Cdtr/Nm", "creditor.name"),
    ("/UltmtCdtr/Nm", "creditor.name"),
    ("/Cdtr/PstlAdr/", "creditor.address"),
    ("/UltmtCdtr/PstlAdr/", "creditor.address"),
    ("/RmtInf/", "remittance"),
    ("/RltdRmtInf/", "remittance"),
    ("/StsRsnInf/AddtlInf", "status.info"),
    ("/RtrRsnInf/AddtlInf", "return.info"),
    ("/CxlRsnInf/AddtlInf", "cancellation.info"),
    ("/CxlStsRsnInf/AddtlInf", "cancellation.info"),
)


# The elements whose text may need fitting: with ASCII input and no character references, only
# those holding a control character (found by libxml2); otherwise every element, each text
# checked in C (str.isascii, str.isprintable) from a loop that does nothing else.
_CONTROL = etree.XPath(
    "//*[contains(text(), $tab) or contains(text(), $lf) or contains(text(), $cr)]"
)
# A participant's identifiers in a dialect, built once and copied into each message (the
# copy costs a fifth of building them). Keyed by namespace, BIC and member id.
_IDENTIFIERS: dict[tuple[str | None, str, str], tuple[etree._Element, etree._Element]] = {}
# One SplmtryData block per document namespace, copied for each kept original (building one
# element by element, with its own namespace map, cost ~10 us).
_BLOCKS: dict[str | None, etree._Element] = {}


@dataclass(frozen=True)
class Rewrite:
    """What the gateway sets in the carried document."""

    msg_id: str
    created: str
    settlement_date: str | None = None  # rolled by policy; None: unchanged
    original: OriginalGroup | None = None  # answers: the original, as its sender knows it


@dataclass
class Carried:
    document: etree._Element
    notes: list[str] = field(default_factory=list)


_LOCALS: dict[str, str] = {}  # "{namespace}Local" -> "Local": the profiles' tags, a few hundred


def _local(el: etree._Element) -> str:
    tag = el.tag
    assert isinstance(tag, str)
    local = _LOCALS.get(tag)
    if local is None:
        if len(_LOCALS) >= 10_000:  # bounded, whatever the tags
            _LOCALS.clear()
        local = _LOCALS[tag] = tag[tag.rfind("}") + 1 :]
    return local


def _in_supplement(el: etree._Element) -> bool:
    """Inside a SplmtryData envelope: the partner's own supplement, lax in every profile,
    carried as it is and never rewritten or set aside."""
    return any(_local(a) == "SplmtryData" for a in el.iterancestors())


def _supplement_holder(root: etree._Element) -> etree._Element:
    """Where the gateway's SplmtryData blocks go: the transaction (its SplmtryData is last in
    its sequence), else the message root."""
    transactions = [t for name in TRANSACTION for t in _children(root, name)]
    return transactions[0] if transactions else root


# "{namespace}name" by (the parent's tag, name): a few hundred at most. Building the string
# each time cost a tenth of a carry.
_QUALIFIED: dict[tuple[str, str], str] = {}


def _qualified(parent: etree._Element, name: str) -> str:
    tag = parent.tag
    assert isinstance(tag, str)
    found = _QUALIFIED.get((tag, name))
    if found is None:
        # "{namespace}" of the parent, or "" for none
        if len(_QUALIFIED) >= 10_000:  # bounded, whatever the tags
            _QUALIFIED.clear()
        found = _QUALIFIED[(tag, name)] = tag[: tag.find("}") + 1] + name
    return found


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    # iterchildren filters by tag in C; find() goes through ElementPath in Python (~3 us).
    return next(parent.iterchildren(_qualified(parent, name)), None)


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    return list(parent.iterchildren(_qualified(parent, name)))


def _path(el: etree._Element, top: etree._Element) -> str:
    steps = []
    node: etree._Element | None = el
    while node is not None:
        steps.append(_local(node))
        if node is top:
            break
        node = node.getparent()
    return "/".join(reversed(steps))


def charset_field(path: str) -> str:
    """The charset-policy field of the text element at `path` (Document/.../Nm)."""
    for fragment, name in _FIELDS:
        if fragment in path:
            return name
    return "default"


def carry(
    msg: BusinessMessage,
    rewrite: Rewrite,
    *,
    source: Dialect,
    target: Dialect,
    directory: Directory,
    charset: CharsetPolicy,
    text_limits: Mapping[str, int],
    identification: tuple[str, str, str] = ("GrpHdr", "MsgId", "CreDtTm"),
) -> Carried:
    """`msg`'s Document for the `target` dialect (see the module's text); raises a `Refusal`.
    `identification`: where the carried family keeps its own id and creation time (its
    `MessageType.identification`), which the gateway sets."""
    document = clone(msg.document)  # indentation is gone already (the reader drops it)
    root = document[0]
    ns = etree.QName(document).namespace
    out = Carried(document)
    holder_name, id_name, created_name = identification
    group = _child(root, holder_name)
    assert group is not None, f"every carried family has its {holder_name} (profile)"
    _set(group, id_name, rewrite.msg_id)
    _set(group, created_name, rewrite.created)
    underlying = [u for name in UNDERLYING for u in _children(root, name)]
    transactions = [
        t for parent in (root, *underlying) for name in TRANSACTION for t in _children(parent, name)
    ]
    for holder in (group, *transactions):
        for role in SCHEME_AGENTS:
            agent = _child(holder, role)
            if agent is not None:
                agent = _child(agent, "Agt") if _child(agent, "FinInstnId") is None else agent
                assert agent is not None, f"{role}: a scheme party is an agent (profile)"
                _scheme_agent(msg, agent, role, source, target, directory, ns)
        if rewrite.settlement_date is not None and holder is not group:
            _set(holder, "IntrBkSttlmDt", rewrite.settlement_date)
    _other_members(document, source, target, directory)
    if rewrite.original is not None:
        for holder in (root, *underlying, *transactions):
            for name in ORIGINAL_GROUPS:
                for original in _children(holder, name):
                    _original(original, rewrite.original, ns)
    if target.latin_only:
        kept = _fit_text(msg, document, charset, text_limits, out.notes)
        if kept:
            _keep_originals(_supplement_holder(root), kept, ns)
    return out


def _set(parent: etree._Element, name: str, value: str) -> None:
    el = _child(parent, name)
    assert el is not None, f"{name} is mandatory where it is rewritten (profile)"
    el.text = value


def _scheme_agent(
    msg: BusinessMessage,
    agent: etree._Element,
    role: str,
    source: Dialect,
    target: Dialect,
    directory: Directory,
    ns: str | None,
) -> None:
    """BICFI and ClrSysMmbId in the target dialect, in the schema's order (first, second)."""
    fin = _child(agent, "FinInstnId")
    assert fin is not None
    bic, member = _child(fin, "BICFI"), _child(fin, "ClrSysMmbId")
    member_id = _child(member, "MmbId") if member is not None else None
    scheme = _child(member, "ClrSysId") if member is not None else None
    system = _child(scheme, "Cd") if scheme is not None else None
    participant = scheme_participant(
        directory,
        # The member id's own clearing system, as named (the dialect's by default).
        (system.text or "").strip() if system is not None else source.clearing_system,
        bic.text if bic is not None else None,
        member_id.text if member_id is not None else None,
        role,
        lambda reason, detail: refusal(msg, reason, detail),
    )
    for old in (bic, member):
        if old is not None:
            fin.remove(old)
    key = (ns, participant.bic, participant.member_id(target.clearing_system))
    built = _IDENTIFIERS.get(key)
    if built is None:
        new_bic = etree.Element(etree.QName(ns, "BICFI"))
        new_bic.text = participant.bic
        new_member = etree.Element(etree.QName(ns, "ClrSysMmbId"))
        system = etree.SubElement(new_member, etree.QName(ns, "ClrSysId"))
        etree.SubElement(system, etree.QName(ns, "Cd")).text = target.clearing_system
        etree.SubElement(new_member, etree.QName(ns, "MmbId")).text = key[2]
        if len(_IDENTIFIERS) >= 10_000:  # bounded: namespaces x participants x systems
            _IDENTIFIERS.clear()
        built = _IDENTIFIERS[key] = (new_bic, new_member)
    fin.insert(0, clone(built[1]))  # an lxml element's copy is deep
    fin.insert(0, clone(built[0]))


def _other_members(
    document: etree._Element, source: Dialect, target: Dialect, directory: Directory
) -> None:
    """Member ids in the source's clearing system elsewhere (a participant named as debtor's
    or creditor's agent, say): a dialect's identifier, so a participant's is mapped to the
    target's; any other bank's is carried as it is (it is a real clearing system's id)."""
    ns = _qualified(document, "")
    for member in document.iter(ns + "ClrSysMmbId"):
        system, member_id = _child(member, "ClrSysId"), _child(member, "MmbId")
        code = _child(system, "Cd") if system is not None else None
        if code is None or member_id is None or code.text != source.clearing_system:
            continue
        participant = directory.by_member_id(source.clearing_system, member_id.text or "")
        if participant is not None:
            code.text = target.clearing_system
            member_id.text = participant.member_id(target.clearing_system)


def _original(el: etree._Element, original: OriginalGroup, ns: str | None) -> None:
    _set(el, "OrgnlMsgId", original.msg_id)
    _set(el, "OrgnlMsgNmId", original.msg_def)
    created = _child(el, "OrgnlCreDtTm")
    if original.created is None:
        if created is not None:
            el.remove(created)
        return
    if created is None:
        created = etree.Element(etree.QName(ns, "OrgnlCreDtTm"))
        name_id = _child(el, "OrgnlMsgNmId")
        assert name_id is not None
        name_id.addnext(created)
    created.text = original.created


def _fit_text(
    msg: BusinessMessage,
    document: etree._Element,
    charset: CharsetPolicy,
    limits: Mapping[str, int],
    notes: list[str],
) -> list[tuple[str, str, str]]:
    """Non-Latin text made Latin by the policy; (field, path, original) of what is kept."""
    kept: list[tuple[str, str, str]] = []
    plain = msg.raw.isascii() and b"&#" not in msg.raw
    candidates = cast(
        list[etree._Element],
        _CONTROL(document, tab="\t", lf="\n", cr="\r") if plain else document.iter(),
    )
    for el in candidates:
        text = el.text
        if not text or (text.isascii() and text.isprintable()) or not isinstance(el.tag, str):
            continue
        path = _path(el, document)
        if "/SplmtryData/" in path:  # the partner's own supplement: carried as it is
            continue
        name = charset_field(path)
        limit = limits.get(_local(el), len(text) * 8)
        try:
            fitted = charset.fit(name, text, limit)
        except CharsetRefusal as exc:
            raise refusal(msg, "NARR", f"cannot carry {exc} offshore (at {path})") from None
        el.text = fitted.text
        notes.append(f"{name}: {fitted.how} (at {path})")
        if fitted.truncated_from is not None:
            notes.append(
                f"{path}: truncated from {fitted.truncated_from} to {len(fitted.text)} "
                "characters (policy allows it)"
            )
        if charset.policy(name).keep_original:
            kept.append((name, path, text))
    return kept


def _keep_originals(
    holder: etree._Element, kept: list[tuple[str, str, str]], ns: str | None
) -> None:
    """One SplmtryData per replaced text, after the holder's own (last in its sequence)."""
    template = _BLOCKS.get(ns)
    if template is None:
        template = etree.Element(etree.QName(ns, "SplmtryData"))
        etree.SubElement(template, etree.QName(ns, "PlcAndNm"))
        etree.SubElement(
            etree.SubElement(template, etree.QName(ns, "Envlp")),
            etree.QName(SUPPLEMENTARY_NS, "OrgnlTxt"),
            nsmap={None: SUPPLEMENTARY_NS},  # type: ignore[dict-item]  # lxml-stubs: default ns
        )
        _BLOCKS[ns] = template
    for name, path, original in kept:
        block = clone(template)
        block[0].text = f"connect-gateway:{name}"
        text = block[1][0]
        text.set("path", path)
        text.text = original
        holder.append(block)


def set_aside(document: etree._Element, schema: etree.XMLSchema, notes: list[str]) -> None:
    """Move what `schema` refuses into SplmtryData, element by element, each with its path and
    a note, until the document holds to it (translation.uncarried = "supplementary"). What
    cannot be moved (a missing mandatory element, the supplement itself) is left for the
    caller's check to refuse."""
    tree = document.getroottree()
    holder = _supplement_holder(document[0])
    for _ in range(20):  # bounded: a profile that refuses more than this is not a dialect's
        if schema.validate(document):
            return
        entry = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
        if entry is None or not entry.path:
            return
        found = tree.xpath(entry.path)
        element = found[0] if isinstance(found, list) and found else None
        if (
            not isinstance(element, etree._Element)
            or element is document
            or "Missing child element" in entry.message
            or _in_supplement(element)
            or _local(element) == "SplmtryData"
        ):
            return
        path = _path(element, document)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)
        element.tail = None
        ns = etree.QName(document).namespace
        block = etree.SubElement(holder, etree.QName(ns, "SplmtryData"))
        etree.SubElement(block, etree.QName(ns, "PlcAndNm")).text = "connect-gateway:uncarried"
        wrapper = etree.SubElement(
            etree.SubElement(block, etree.QName(ns, "Envlp")),
            etree.QName(SUPPLEMENTARY_NS, "Uncarried"),
            nsmap={None: SUPPLEMENTARY_NS},  # type: ignore[dict-item]  # lxml-stubs: default ns
        )
        wrapper.set("path", path)
        wrapper.append(element)
        notes.append(
            f"{path}: not carried by the target dialect's profile; kept in SplmtryData "
            "(translation.uncarried = supplementary)"
        )


def unstructured_address(document: etree._Element) -> str | None:
    """The path of the first unstructured-only postal address (address lines, and neither a
    town nor a country), or None. CBPR+ refuses them since November 2026."""
    for address in document.iter("{*}PstlAdr"):
        names = {_local(c) for c in address if isinstance(c.tag, str)}
        if "AdrLine" in names and not names & {"TwnNm", "Ctry"}:
            return _path(address, document)
    return None
