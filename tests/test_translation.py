"""What a translation yields besides the message: obligations, notes, correlations, voids."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from decimal import Decimal
from pathlib import Path

from gateway.canonical import Money, Obligation
from gateway.config import Config
from gateway.directory import ReloadingDirectory, default_path
from gateway.iso20022.reader import read_message
from gateway.translation import Translator
from tests.conftest import SAMPLES


def sample(side: str, msg_def: str) -> bytes:
    return (SAMPLES / side / f"{msg_def}.xml").read_bytes()


def test_a_payment_yields_its_obligation_and_correlation(config: Config) -> None:
    t = Translator(config)
    out = t.process(sample("onshore", "pacs.008.001.08"), "onshore")
    assert out.accepted
    assert out.obligations == (
        Obligation(
            "HPCBCNSHXXX",
            "VHBKHKHHXXX",
            Money(Decimal("1250000.00"), "CNY"),
            "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",
        ),
    )
    assert out.correlation is not None and out.correlation.sender_bic == "HPCBCNSHXXX"
    sent = read_message(out.message)
    assert out.correlation.outbound_biz_msg_idr == sent.header_text("BizMsgIdr")
    assert any(n.startswith("debtor.name: transliterated to Latin") for n in out.notes)


def test_a_rejection_from_the_other_side_voids_the_obligation(config: Config) -> None:
    t = Translator(config)
    t.process(sample("onshore", "pacs.008.001.08"), "onshore")
    status = sample("offshore", "pacs.002.001.10").replace(
        b"<TxSts>ACSC</TxSts>", b"<TxSts>RJCT</TxSts>"
    )
    out = t.process(status, "offshore")
    assert out.accepted and out.cancels == ("0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",)
    assert t.process(sample("offshore", "pacs.002.001.10"), "offshore").cancels == ()


def test_a_status_that_is_no_iso_status_code_is_refused(config: Config) -> None:
    # The profiles keep the standard's external code (any 4 letters); what the gateway acts
    # on must be a code of the ISO list, else nobody can tell what it means.
    t = Translator(config)
    t.process(sample("onshore", "pacs.008.001.08"), "onshore")
    status = sample("offshore", "pacs.002.001.10").replace(
        b"<TxSts>ACSC</TxSts>", b"<TxSts>DONE</TxSts>"
    )
    out = t.process(status, "offshore")
    assert not out.accepted and out.error is not None
    assert (
        "TxSts DONE is not an ISO 20022 ExternalPaymentTransactionStatus1Code" in out.error.detail
    )


def test_a_status_from_the_side_that_sent_the_original_is_not_correlated(config: Config) -> None:
    t = Translator(config)
    t.process(sample("onshore", "pacs.008.001.08"), "onshore")
    # The onshore sample reports on the *offshore* payment's UETR, which is unknown here.
    out = t.process(sample("onshore", "pacs.002.001.10"), "onshore")
    assert not out.accepted and out.error is not None and out.error.kind == "uncorrelated"


def test_a_return_yields_the_reverse_obligation(config: Config) -> None:
    t = Translator(config)
    t.process(sample("onshore", "pacs.008.001.08"), "onshore")
    out = t.process(sample("offshore", "pacs.004.001.09"), "offshore")
    assert out.accepted
    assert out.obligations == (
        Obligation(
            "VHBKHKHHXXX",
            "HPCBCNSHXXX",
            Money(Decimal("1250000.00"), "CNY"),
            "return:0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",
        ),
    )


def test_a_dvp_instruction_exposes_its_cash_leg(config: Config) -> None:
    t = Translator(config)
    out = t.process(sample("offshore", "sese.023.001.09"), "offshore")
    assert out.accepted
    # The offshore investor receives the bonds and pays (DBIT) the onshore seller.
    assert out.obligations == (
        Obligation(
            "VHBKHKHHXXX", "HPCBCNSHXXX", Money(Decimal("10125000.00"), "CNY"), "sese:OFF-SESE-0001"
        ),
    )
    assert any(
        n.startswith("northbound: account owner VHBKHKHHXXX held through nominee")
        for n in out.notes
    )
    rejected = sample("onshore", "sese.024.001.10")  # Rjctd SAFE
    answer = t.process(rejected, "onshore")
    assert answer.accepted and answer.cancels == ("sese:OFF-SESE-0001",)


def test_translation_is_deterministic_across_translators(config: Config) -> None:
    first = Translator(config).process(sample("offshore", "pacs.009.001.08"), "offshore")
    second = Translator(config).process(sample("offshore", "pacs.009.001.08"), "offshore")
    a, b = read_message(first.message), read_message(second.message)
    assert a.header_text("BizMsgIdr") == b.header_text("BizMsgIdr")
    assert a.doc_text("FICdtTrf/GrpHdr/MsgId") == b.doc_text("FICdtTrf/GrpHdr/MsgId")


def test_a_reloaded_directory_changes_the_member_ids_translated_next(
    config: Config, tmp_path: Path
) -> None:
    """Agents are rendered once per directory version: a new version is used at once."""
    path = tmp_path / "participants.toml"
    shutil.copy(default_path(), path)
    t = Translator(config, directory=ReloadingDirectory(path, interval=0))
    payload = sample("onshore", "pacs.008.001.08")

    def instructing_member_id(data: bytes) -> str | None:
        out = t.process(data, "onshore")
        assert out.accepted, out.error
        return read_message(out.message).doc_text(
            "FIToFICstmrCdtTrf/CdtTrfTxInf/InstgAgt/FinInstnId/ClrSysMmbId/MmbId"
        )

    assert instructing_member_id(payload) == "901"
    text = path.read_text()
    path.write_text(
        text.replace('version = "2026-11-20.1"', 'version = "2026-11-22.1"').replace(
            'hk_code = "901"', 'hk_code = "909"'
        )
    )
    later = time.time() + 5  # a distinct mtime even on coarse file systems
    os.utime(path, (later, later))
    again = payload.replace(b"0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", str(uuid.uuid4()).encode())
    assert instructing_member_id(again) == "909"


def _requested(config: Config) -> Translator:
    """A translator that forwarded the onshore payment and its payer's cancellation request."""
    t = Translator(config)
    assert t.process(sample("onshore", "pacs.008.001.08"), "onshore").accepted
    assert t.process(sample("onshore", "camt.056.001.08"), "onshore").accepted
    return t


def test_a_cancellation_accepted_voids_only_while_open_and_others_change_nothing(
    config: Config,
) -> None:
    t = _requested(config)
    accepted = t.process(sample("offshore", "camt.029.001.09"), "offshore")
    assert accepted.accepted and accepted.voids_open == ("0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01",)
    assert accepted.cancels == () and accepted.obligations == ()
    refused = sample("offshore", "camt.029.001.09").replace(b"<Conf>CNCL<", b"<Conf>RJCR<")
    out = t.process(refused.replace(b"-0001<", b"-0002<"), "offshore")
    assert out.accepted and out.voids_open == ()


def test_a_resolution_without_a_confirmation_code_is_carried_with_no_effect(
    config: Config,
) -> None:
    """Sts/DplctOf (the request duplicates another case): carried back, nothing voided."""
    duplicate = sample("offshore", "camt.029.001.09").replace(
        b"<Conf>CNCL</Conf>",
        b"<DplctOf><Id>ON-CASE-0000</Id><Cretr><Agt><FinInstnId><BICFI>HPCBCNSHXXX</BICFI>"
        b"</FinInstnId></Agt></Cretr></DplctOf>",
    )
    out = _requested(config).process(duplicate, "offshore")
    assert out.accepted, out.error
    assert out.voids_open == ()
    assert b"<DplctOf><Id>ON-CASE-0000</Id>" in out.message


def test_an_unknown_confirmation_code_is_refused(config: Config) -> None:
    bad = sample("offshore", "camt.029.001.09").replace(b"<Conf>CNCL<", b"<Conf>ZZZZ<")
    out = _requested(config).process(bad, "offshore")
    assert not out.accepted and out.error is not None and out.error.code == "NARR"
