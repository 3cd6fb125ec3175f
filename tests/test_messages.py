"""Rejects, idempotency keys, deterministic ids and the translation path, checked against the
profiles and the official schemas."""

from __future__ import annotations

from datetime import datetime

import pytest
from lxml import etree

from gateway.adapters import dialect
from gateway.clock import UTC8
from gateway.config import Config
from gateway.idempotency import extract_keys, fingerprint
from gateway.iso20022 import errors
from gateway.iso20022.builders import Party, RejectContext
from gateway.iso20022.namespaces import HEAD, ns
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message, refusal
from gateway.rejects import Refused
from gateway.rejects import build_reject as build
from gateway.translation import Translator
from tests.conformance import assert_officially_valid
from tests.conftest import SAMPLES, SHARED

needs_shared = pytest.mark.skipif(not (SHARED / "tools").is_dir(), reason="../shared not present")
FIXED = datetime(2026, 11, 20, 10, 30, 0, tzinfo=UTC8)


def sample(side: str, msg_def: str) -> bytes:
    return (SAMPLES / side / f"{msg_def}.xml").read_bytes()


def ctx(side: str) -> RejectContext:
    return RejectContext(
        latin_only=dialect(side).latin_only,  # type: ignore[arg-type]
        gateway=Party("SHHKCNSHGWY"),
        fallback_to=Party("CIPSCNSHXXX"),
        created=FIXED,
    )


def build_reject(
    error: errors.MessageError, context: RejectContext, *, sese_tx_id: str | None = None
) -> bytes:
    """The reject the gateway would choose for `error` (the refused message's Document is
    not needed by these)."""
    return build(Refused(error, context, sese_tx_id))[1]


def text(data: bytes, msg_def: str, path: str) -> str | None:
    root = etree.fromstring(data)
    return root.findtext(".//" + "/".join(f"{{{ns(msg_def)}}}{p}" for p in path.split("/")))


def validate_both(profiles: dict[str, ProfileSet], side: str, data: bytes) -> None:
    profiles[side].validate(read_message(data))


@pytest.mark.parametrize("side", ["onshore", "offshore"])
def test_pacs002_reject_of_a_refused_payment_carries_the_original_ids(
    profiles: dict[str, ProfileSet], side: str
) -> None:
    msg = read_message(sample(side, "pacs.008.001.08"))
    error = refusal(msg, "RC01", "instructed agent 不在目录中 (unknown participant)")
    out = build_reject(error, ctx(side))
    validate_both(profiles, side, out)
    keys = extract_keys(msg)
    p2 = "pacs.002.001.10"
    assert text(out, p2, "TxInfAndSts/OrgnlUETR") == keys.correlation
    assert text(out, p2, "TxInfAndSts/OrgnlEndToEndId") == msg.doc_text(
        "FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/EndToEndId"
    )
    assert text(out, p2, "OrgnlGrpInfAndSts/OrgnlMsgId") == msg.doc_text(
        "FIToFICstmrCdtTrf/GrpHdr/MsgId"
    )
    assert text(out, p2, "OrgnlGrpInfAndSts/OrgnlMsgNmId") == "pacs.008.001.08"
    assert text(out, p2, "TxInfAndSts/TxSts") == "RJCT"
    assert text(out, p2, "TxInfAndSts/StsRsnInf/Rsn/Cd") == "RC01"
    assert text(out, HEAD, "To/FIId/FinInstnId/BICFI") == msg.header_text(
        "Fr/FIId/FinInstnId/BICFI"
    )
    info = text(out, p2, "TxInfAndSts/StsRsnInf/AddtlInf") or ""
    if side == "offshore":
        assert info.isascii() and "\\u4e0d" in info  # escaped, not dropped
    else:
        assert "不在目录中" in info


@pytest.mark.parametrize("side", ["onshore", "offshore"])
def test_sese024_reject_of_a_refused_instruction(
    profiles: dict[str, ProfileSet], side: str
) -> None:
    msg = read_message(sample(side, "sese.023.001.09"))
    out = build_reject(
        refusal(msg, "DU01", "TxId already used for another instruction"),
        ctx(side),
        sese_tx_id=msg.doc_text("SctiesSttlmTxInstr/TxId"),
    )
    validate_both(profiles, side, out)
    s24 = "sese.024.001.10"
    assert text(out, s24, "TxId/AcctOwnrTxId") == msg.doc_text("SctiesSttlmTxInstr/TxId")
    assert text(out, s24, "PrcgSts/Rjctd/Rsn/Cd/Cd") == "REFE"
    assert (text(out, s24, "PrcgSts/Rjctd/Rsn/AddtlRsnInf") or "").startswith("DU01: ")


@pytest.mark.parametrize("side", ["onshore", "offshore"])
def test_admi002_for_an_invalid_message_names_it_and_the_error(
    profiles: dict[str, ProfileSet], side: str, config: Config
) -> None:
    bad = sample(side, "pacs.009.001.08").replace(b"<NbOfTxs>1<", b"<NbOfTxs>7<")
    outcome = Translator(config, clock=lambda: FIXED).process(bad, side)  # type: ignore[arg-type]
    assert not outcome.accepted and isinstance(outcome.error, errors.SchemaViolation)
    validate_both(profiles, side, outcome.message)
    a2 = "admi.002.001.01"
    pfx = "ON" if side == "onshore" else "OFF"
    assert text(outcome.message, a2, "RltdRef/Ref") == f"{pfx}-BIZ-P9-0001"
    assert text(outcome.message, a2, "Rsn/RjctgPtyRsn") == "FF01"
    assert text(outcome.message, a2, "Rsn/ErrLctn") == "Document/FICdtTrf/GrpHdr/NbOfTxs"
    assert "'7' is not accepted by the pattern" in (text(outcome.message, a2, "Rsn/RsnDesc") or "")


@needs_shared
def test_every_kind_of_reject_is_officially_valid(config: Config) -> None:
    out = []
    for side in ("onshore", "offshore"):
        msg = read_message(sample(side, "pacs.008.001.08"))
        out.append(build_reject(refusal(msg, "AM04", "x" * 400), ctx(side)))
        s = read_message(sample(side, "sese.023.001.09"))
        out.append(build_reject(refusal(s, "RC01", "unknown"), ctx(side), sese_tx_id="T-1"))
        out.append(Translator(config).process(b"<not xml", side).message)  # type: ignore[arg-type]
        out.append(
            Translator(config)
            .process(
                sample(side, "pacs.002.001.10").replace(b"<TxSts>", b"<TxSts>X"),  # type: ignore[arg-type]
                side,
            )
            .message
        )
    assert_officially_valid(*out)


def test_idempotency_keys_of_each_message_family() -> None:
    def keys(side: str, msg_def: str):  # type: ignore[no-untyped-def]
        return extract_keys(read_message(sample(side, msg_def)))

    k = keys("onshore", "pacs.008.001.08")
    assert k.message == "msg:HPCBCNSHXXX:ON-BIZ-P8-0001"
    assert k.transactions == ("uetr:0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",)
    assert k.correlation == "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
    assert not k.possible_duplicate
    assert keys("offshore", "pacs.002.001.10").transactions == (
        "status:0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01:ACSC",
    )
    assert keys("onshore", "pacs.004.001.09").correlation == "5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22"
    assert keys("offshore", "sese.023.001.09").transactions == ("sese:VHBKHKHHXXX:OFF-SESE-0001",)
    assert keys("onshore", "sese.025.001.09").transactions == (
        "sese.025:OFF-SESE-0001:ON-SVC-0002",
    )

    # A bare Document falls back to the group level: (instructing agent, MsgId).
    full = sample("onshore", "pacs.008.001.08")
    bare = (
        b"<?xml version='1.0' encoding='UTF-8'?>"
        + full[full.index(b"<Document") : full.index(b"</BizMsg>")]
    )
    assert extract_keys(read_message(bare)).message == "grp:HPCBCNSHXXX:ON-MSG-P8-0001"

    resent = full.replace(b"</CreDt>", b"</CreDt><PssblDplct>true</PssblDplct>")
    assert extract_keys(read_message(resent)).possible_duplicate


def test_fingerprint_ignores_the_header_but_not_the_document() -> None:
    data = sample("onshore", "pacs.008.001.08")
    base = fingerprint(read_message(data))
    resend = data.replace(
        b"10:15:00+08:00</CreDt>", b"11:00:00+08:00</CreDt><PssblDplct>true</PssblDplct>"
    )
    assert fingerprint(read_message(resend)) == base
    changed = data.replace(b">1250000.00<", b">1250000.01<", 1)
    assert fingerprint(read_message(changed)) != base


@pytest.mark.parametrize("side", ["onshore", "offshore"])
def test_translation_re_envelopes_deterministically(
    config: Config, profiles: dict[str, ProfileSet], side: str
) -> None:
    data = sample(side, "pacs.008.001.08")
    first = Translator(config).process(data, side)  # type: ignore[arg-type]
    again = Translator(config).process(data, side)  # type: ignore[arg-type]
    assert first.accepted and first.destination != side
    target = first.destination
    out = read_message(first.message)
    assert out.header is not None
    assert profiles[target].is_valid(HEAD, out.header)  # the header is in the target dialect
    assert out.header_text("Fr/FIId/FinInstnId/BICFI") == config.gateway.bic
    assert out.header_text("To/FIId/FinInstnId/BICFI") == config.side(target).system_bic
    assert out.header_text("BizMsgIdr") == read_message(again.message).header_text("BizMsgIdr")
    assert extract_keys(out).correlation == extract_keys(read_message(data)).correlation
