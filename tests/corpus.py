"""The public CBPR+ corpus, adapted to this gateway's directory: traffic nobody here wrote.

The PyPI package cbpr-usage-rules (MIT) ships SWIFT CBPR+ example messages, a minimal and a
maximal variant of each, for y2025 and y2026. `adapt` turns one into what a partner bank of
one side would publish, changing only:
- the scheme agents (InstgAgt, InstdAgt): a participant of the source side and one of the
  other, identified as the source dialect identifies them (BIC + member id);
- the AppHdr: from the instructing participant to the gateway, with the side's BizSvc, in the
  gateway's envelope;
- every currency to CNY; the interbank settlement date to a business day of both sides.
Names, texts, addresses and every other agent (debtor's and creditor's agents,
intermediaries, correspondents) stay exactly as published.

`python -m tests.corpus` prints what the gateway does with each adapted example today.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

from lxml import etree

from gateway.adapters import dialect
from gateway.calendars import Calendars
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.namespaces import ENVELOPE_NS
from gateway.sides import Side, other_side

HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
# What the gateway carries today between the sides (the sese and admin families are not in
# the CBPR+ corpus; pacs.002 and pacs.004 need their original and are adapted with it later).
FAMILIES = ("pacs.008", "pacs.009")
# Answers, adapted with an original to answer (`adapt_answer`).
ANSWERS = ("pacs.002", "pacs.004")
SETTLEMENT_DAY = date(2026, 12, 1)
# What the corpus writes where a code of an ISO external code set goes.
PLACEHOLDERS = frozenset({"EXTx", "EXCd"})  # adapted to the next business day of both sides


@dataclass(frozen=True)
class Example:
    year: str
    name: str  # e.g. pacs.008_stp.max
    path: Path

    @property
    def family(self) -> str:
        return self.name.split(".", 2)[0] + "." + self.name.split(".", 2)[1].split("_")[0]


def examples(families: tuple[str, ...] = FAMILIES) -> list[Example]:
    """The corpus's payment examples (or answers), both years, in a stable order."""
    root = Path(str(resources.files("cbpr_rules").joinpath("examples")))
    found = []
    for year in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for path in sorted((root / year).glob("*.xml")):
            example = Example(year, path.stem, path)
            if example.family in families:
                found.append(example)
    return found


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _scheme_agent(fin: etree._Element, ns: str, bic: str, clearing: str, member: str) -> None:
    """A scheme agent's FinInstnId as the source dialect identifies it: BIC + member id."""
    for child in list(fin):
        fin.remove(child)
    etree.SubElement(fin, _q(ns, "BICFI")).text = bic
    mmb = etree.SubElement(fin, _q(ns, "ClrSysMmbId"))
    etree.SubElement(etree.SubElement(mmb, _q(ns, "ClrSysId")), _q(ns, "Cd")).text = clearing
    etree.SubElement(mmb, _q(ns, "MmbId")).text = member


def adapt(raw: bytes, source: Side, config: Config, directory: Directory) -> bytes:
    """The example as a participant of `source` would publish it (see the module's text)."""
    root = etree.fromstring(raw)
    header = root.find(_q(HEAD_NS, "AppHdr"))
    document = next(el for el in root if etree.QName(el).localname == "Document")
    ns = etree.QName(document).namespace or ""
    payer = next(p for p in directory.participants.values() if p.side == source)
    payee = next(p for p in directory.participants.values() if p.side == other_side(source))
    clearing = dialect(source).clearing_system
    for role, who in (("InstgAgt", payer), ("InstdAgt", payee)):
        for fin in document.iterfind(f".//{_q(ns, role)}/{_q(ns, 'FinInstnId')}"):
            _scheme_agent(fin, ns, who.bic, clearing, who.member_id(clearing))
    for el in document.iter():
        if isinstance(el.tag, str) and "Ccy" in el.attrib:
            el.set("Ccy", "CNY")
    day = Calendars.load().next_common_business_day(SETTLEMENT_DAY)
    assert day is not None
    for el in document.iter(_q(ns, "IntrBkSttlmDt")):
        el.text = day.isoformat()
    if header is not None:
        _adapt_header(header, payer.bic, config, source)
    envelope = etree.Element(_q(ENVELOPE_NS, "BizMsg"), nsmap={None: ENVELOPE_NS})
    if header is not None:
        envelope.append(header)
    envelope.append(document)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def adapt_answer(
    raw: bytes, source: Side, config: Config, directory: Directory, original_uetr: str
) -> bytes:
    """An answer (pacs.002, pacs.004) adapted as `adapt` does, answering the payment with
    `original_uetr`. The corpus's codes are placeholders ("EXTx", "EXCd"): a status becomes
    ACSP, a status or return reason NARR, codes of ISO's external code sets, which the gateway
    checks (the profiles take any code)."""
    root = etree.fromstring(adapt(raw, source, config, directory))
    for el in root.iter("{*}OrgnlUETR"):
        el.text = original_uetr
    for el in (*root.iter("{*}TxSts"), *root.iter("{*}GrpSts")):
        if el.text in PLACEHOLDERS:
            el.text = "ACSP"
    for el in root.iter("{*}Cd"):
        reason = el.getparent()
        if (
            el.text in PLACEHOLDERS
            and reason is not None
            and etree.QName(reason).localname == "Rsn"
        ):
            el.text = "NARR"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _adapt_header(header: etree._Element, sender: str, config: Config, source: Side) -> None:
    def party(name: str, bic: str) -> None:
        old = header.find(_q(HEAD_NS, name))
        new = etree.Element(_q(HEAD_NS, name))
        fin = etree.SubElement(
            etree.SubElement(new, _q(HEAD_NS, "FIId")), _q(HEAD_NS, "FinInstnId")
        )
        etree.SubElement(fin, _q(HEAD_NS, "BICFI")).text = bic
        assert old is not None
        header.replace(old, new)

    party("Fr", sender)
    party("To", config.gateway.bic)
    svc = header.find(_q(HEAD_NS, "BizSvc"))
    if svc is None:
        svc = etree.Element(_q(HEAD_NS, "BizSvc"))
        msg_def = header.find(_q(HEAD_NS, "MsgDefIdr"))
        assert msg_def is not None
        msg_def.addnext(svc)
    svc.text = config.side(source).biz_svc


def main() -> int:
    """What the gateway does with each adapted example, from each side."""
    from gateway.translation import Translator

    config = Config()
    translator = Translator(config)
    directory = translator.directory.current()
    passed = total = 0
    for example in examples():
        for source in ("onshore", "offshore"):
            total += 1
            data = adapt(example.path.read_bytes(), source, config, directory)  # type: ignore[arg-type]
            outcome = translator.process(data, source)  # type: ignore[arg-type]
            passed += outcome.accepted
            verdict = "translated" if outcome.accepted else f"refused {outcome.error}"
            print(f"{example.year}/{example.name} from {source}: {verdict}"[:300])
    original = next(e for e in examples() if e.name == "pacs.008.min")
    for example in examples(ANSWERS):
        for source in ("onshore", "offshore"):
            total += 1
            payment = adapt(original.path.read_bytes(), other_side(source), config, directory)
            first = translator.process(payment, other_side(source))
            uetr = etree.fromstring(payment).findtext(".//{*}UETR") or ""
            data = adapt_answer(example.path.read_bytes(), source, config, directory, uetr)  # type: ignore[arg-type]
            outcome = translator.process(data, source)  # type: ignore[arg-type]
            passed += outcome.accepted
            verdict = "translated" if outcome.accepted else f"refused {outcome.error}"
            print(
                f"{example.year}/{example.name} from {source} ({first.accepted}): {verdict}"[:300]
            )
    print(f"{passed} of {total} translate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
