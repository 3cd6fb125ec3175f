"""Idempotency keys (docs/domain.md, 'Idempotency keys').

- message level: (Fr BIC, BizMsgIdr) from the AppHdr; for a bare Document, the group level
  (instructing agent, MsgId);
- transaction level: the UETR for payments; (account owner, TxId) for sese.023; status reports
  and returns are keyed by what they report on, so one status is applied once.
The fingerprint tells a resend of the same message (PssblDplct) from a different message
reusing a key (DU01): it hashes the canonical form of the Document only, since a resend carries
a new header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from gateway.iso20022.namespaces import family
from gateway.iso20022.reader import BusinessMessage


@dataclass(frozen=True)
class IdempotencyKeys:
    message: str
    transactions: tuple[str, ...]
    correlation: str | None  # what ties it to other messages: UETR, original UETR, TxId
    possible_duplicate: bool


# Per message family: (group id path, instructing agent path, transaction key, correlation).
# Paths are below Document; None where the message has no such element.
_PATHS: dict[str, dict[str, str]] = {
    "pacs.008": {
        "msg_id": "FIToFICstmrCdtTrf/GrpHdr/MsgId",
        "agent": "FIToFICstmrCdtTrf/CdtTrfTxInf/InstgAgt/FinInstnId/BICFI",
        "uetr": "FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/UETR",
    },
    "pacs.009": {
        "msg_id": "FICdtTrf/GrpHdr/MsgId",
        "agent": "FICdtTrf/CdtTrfTxInf/InstgAgt/FinInstnId/BICFI",
        "uetr": "FICdtTrf/CdtTrfTxInf/PmtId/UETR",
    },
    "pacs.002": {
        "msg_id": "FIToFIPmtStsRpt/GrpHdr/MsgId",
        "agent": "FIToFIPmtStsRpt/TxInfAndSts/InstgAgt/FinInstnId/BICFI",
        "orgnl_uetr": "FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR",
        "status": "FIToFIPmtStsRpt/TxInfAndSts/TxSts",
        "orgnl_msg_id": "FIToFIPmtStsRpt/OrgnlGrpInfAndSts/OrgnlMsgId",
    },
    "pacs.004": {
        "msg_id": "PmtRtr/GrpHdr/MsgId",
        "agent": "PmtRtr/TxInf/InstgAgt/FinInstnId/BICFI",
        "orgnl_uetr": "PmtRtr/TxInf/OrgnlUETR",
        "rtr_id": "PmtRtr/TxInf/RtrId",
    },
    "pacs.029": {"msg_id": "MulSttlmReq/GrpHdr/MsgId"},
    "camt.053": {"msg_id": "BkToCstmrStmt/GrpHdr/MsgId"},
    "admi.002": {"ref": "admi.002.001.01/RltdRef/Ref"},
    "sese.023": {
        "tx_id": "SctiesSttlmTxInstr/TxId",
        "agent": "SctiesSttlmTxInstr/QtyAndAcctDtls/AcctOwnr/Id/AnyBIC",
    },
    "sese.024": {
        "tx_id": "SctiesSttlmTxStsAdvc/TxId/AcctOwnrTxId",
        "svc_id": "SctiesSttlmTxStsAdvc/TxId/AcctSvcrTxId",
    },
    "sese.025": {
        "tx_id": "SctiesSttlmTxConf/TxIdDtls/AcctOwnrTxId",
        "svc_id": "SctiesSttlmTxConf/TxIdDtls/AcctSvcrTxId",
    },
}


def extract_keys(msg: BusinessMessage) -> IdempotencyKeys:
    fam = family(msg.msg_def)
    paths = _PATHS[fam]

    def get(name: str) -> str | None:
        path = paths.get(name)
        return msg.doc_text(path) if path else None

    agent = get("agent") or "-"
    if msg.header is not None:
        sender = msg.header_text("Fr/FIId/FinInstnId/BICFI") or "-"
        message = f"msg:{sender}:{msg.header_text('BizMsgIdr')}"
    else:
        group = get("msg_id") or get("tx_id") or get("ref") or "-"
        message = f"grp:{agent}:{group}"

    transactions: tuple[str, ...] = ()
    correlation: str | None = None
    if fam in ("pacs.008", "pacs.009"):
        uetr = get("uetr")
        transactions, correlation = ((f"uetr:{uetr}",), uetr) if uetr else ((), None)
    elif fam == "pacs.002":
        correlation = get("orgnl_uetr") or get("orgnl_msg_id")
        status = get("status")
        if correlation and status:
            transactions = (f"status:{correlation}:{status}",)
    elif fam == "pacs.004":
        correlation = get("orgnl_uetr")
        if correlation:
            transactions = (f"return:{correlation}",)
    elif fam == "sese.023":
        correlation = get("tx_id")
        transactions = (f"sese:{agent}:{correlation}",)
    elif fam in ("sese.024", "sese.025"):
        correlation = get("tx_id")
        transactions = (f"{fam}:{correlation}:{get('svc_id') or '-'}",)

    flag = msg.header_text("PssblDplct")
    return IdempotencyKeys(message, transactions, correlation, flag in ("true", "1"))


def fingerprint(msg: BusinessMessage) -> str:
    """sha256 of the exclusive canonical form (C14N) of the Document."""
    canonical = etree.tostring(msg.document, method="c14n", exclusive=True)
    return hashlib.sha256(canonical).hexdigest()
