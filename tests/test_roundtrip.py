"""Property: dialect -> canonical -> dialect is lossless for every field the profile allows.

Hypothesis builds canonical values within each profile's rules (lengths, patterns, choices,
occurrences; Chinese text onshore, Latin offshore), encodes them, checks the document against
the profile, decodes it and requires the very same value back; encoding that again must give
the same bytes.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.adapters import dialect
from gateway.canonical import (
    Account,
    Address,
    Agent,
    Business,
    CashLeg,
    Customer,
    GroupStatus,
    MessageReject,
    Money,
    MovementRecord,
    NetSettlement,
    OriginalGroup,
    Payment,
    PaymentReturn,
    Reason,
    SecuritiesAccount,
    SecuritiesConfirmation,
    SecuritiesDetails,
    SecuritiesInstruction,
    SecuritiesStatus,
    SettlementParties,
    SettlementParty,
    StatusReport,
    Supplementary,
    TransactionStatus,
)
from gateway.charset import CharsetPolicy
from gateway.codec.context import DecodeContext, EncodeContext
from gateway.directory import default_path, load_directory
from gateway.iso20022.builders import Party, build_header, envelope
from gateway.iso20022.reader import read_message
from gateway.messages.registry import decode, encode_text, profile_set
from gateway.sides import Side

DIRECTORY = load_directory(default_path())
BICS = sorted(DIRECTORY.participants)
DEPOSITORIES = sorted(DIRECTORY.depositories)
CHARSET = CharsetPolicy.load()
PROFILES = {side: profile_set(side) for side in ("onshore", "offshore")}

LATIN = string.ascii_letters + string.digits + " /-?:().,'+&"
CHINESE = "张伟李娜王芳上海浦江贸易有限公司香港深圳北京债券货款退汇收款账户中国银行"


def _text(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=max_size)


def free_text(side: Side, max_size: int) -> st.SearchStrategy[str]:
    """Free text as the dialect allows it: any Unicode onshore, printable Latin offshore."""
    if side == "offshore":
        return _text(LATIN, max_size)
    return _text(LATIN + CHINESE + "éü（）、。", max_size)


# Max35Text: no blank at either end.
max35 = st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9 /\-.:]{0,33}[A-Za-z0-9]", fullmatch=True
) | st.from_regex(r"[A-Z0-9]", fullmatch=True)
code4 = st.from_regex(r"[A-Z0-9]{4}", fullmatch=True)
uuid4 = st.uuids(version=4).map(str)
lei = st.from_regex(r"[A-Z0-9]{18}[0-9]{2}", fullmatch=True)
account_id = st.from_regex(r"[A-Za-z0-9\-]{1,34}", fullmatch=True)
country = st.sampled_from(["CN", "HK", "SG", "GB", "US"])
currency = st.sampled_from(["CNY", "HKD", "USD"])
iso_date = st.dates(date(2000, 1, 1), date(2099, 12, 31)).map(date.isoformat)
iso_datetime = st.builds(
    lambda d, h: (datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=h))) + d).isoformat(
        timespec="seconds"
    ),
    st.timedeltas(timedelta(0), timedelta(days=3650)),
    st.sampled_from([0, 8, -5]),
)


@st.composite
def decimal_text(draw: Any, max_int_digits: int) -> Decimal:
    """Positive amounts with 0 to 2 decimals, written as XML writes them (no exponent)."""
    places = draw(st.integers(0, 2))
    whole = draw(st.integers(0, 10**max_int_digits - 1))
    frac = draw(st.integers(0, 10**places - 1)) if places else 0
    if whole == 0 and frac == 0:
        frac, places = 1, 2
    text = f"{whole}.{frac:0{places}d}" if places else str(whole)
    return Decimal(text)


money = st.builds(Money, decimal_text(12), currency)
agents = st.builds(Agent, st.sampled_from(BICS), st.none() | lei, st.none())


def agent_with_name(side: Side) -> st.SearchStrategy[Agent]:
    return st.builds(
        Agent, st.sampled_from(BICS), st.none() | lei, st.none() | free_text(side, 140)
    )


def customers(side: Side) -> st.SearchStrategy[Customer]:
    address = st.none() | st.builds(
        Address,
        st.none() | free_text(side, 35),
        st.none() | country,
        st.lists(free_text(side, 70), max_size=3).map(tuple),
    ).filter(lambda a: a.town or a.country or a.lines)  # an empty PstlAdr has no XML form
    ids = st.one_of(
        st.tuples(st.none(), st.none()),
        st.tuples(st.sampled_from(BICS), st.none() | lei),
        st.tuples(st.none(), lei),
    )
    return st.builds(
        lambda n, a, i, c: Customer(n, a, i[0], i[1], c),
        free_text(side, 140),
        address,
        ids,
        st.none() | country,
    )


accounts = st.none() | st.builds(Account, account_id, st.none() | currency)


def supplementary(side: Side) -> st.SearchStrategy[Supplementary]:
    def block(place: str | None, text: str) -> Supplementary:
        el = etree.Element("{urn:example:partner}Note", nsmap={"p": "urn:example:partner"})
        el.text = text
        return Supplementary(place, etree.tostring(el))

    return st.builds(block, st.none() | free_text("offshore", 350), free_text(side, 50))


def payments(side: Side) -> st.SearchStrategy[Payment]:
    def build(kind: str, d: dict[str, Any]) -> Payment:
        customer = kind == "customer"
        return Payment(
            kind=kind,  # type: ignore[arg-type]
            msg_id=d["msg_id"],
            created=d["created"],
            settlement_method=d["method"],
            end_to_end_id=d["e2e"],
            uetr=d["uetr"],
            amount=d["amount"],
            settlement_date=d["date"],
            instructing=d["instg"],
            instructed=d["instd"],
            debtor=d["dbtr"] if customer else d["dbtr_agent"],
            creditor=d["cdtr"] if customer else d["cdtr_agent"],
            instr_id=d["instr_id"],
            tx_id=d["tx_id"],
            clr_sys_ref=d["clr"],
            priority=d["priority"],
            charge_bearer=d["chrg"] if customer else None,
            debtor_account=d["dbtr_acct"],
            creditor_account=d["cdtr_acct"],
            debtor_agent=d["dbtr_agt"] if customer else None,
            creditor_agent=d["cdtr_agt"] if customer else None,
            purpose=d["purpose"],
            remittance=d["rmt"],
            supplementary=d["spl"],
        )

    fields = st.fixed_dictionaries(
        {
            "msg_id": max35,
            "created": iso_datetime,
            "method": st.sampled_from(["CLRG", "INDA", "INGA"]),
            "e2e": max35,
            "uetr": uuid4,
            "amount": money,
            "date": iso_date,
            "instg": agent_with_name(side),
            "instd": agents,
            "dbtr": customers(side),
            "cdtr": customers(side),
            "dbtr_agent": agents,
            "cdtr_agent": agent_with_name(side),
            "instr_id": st.none() | max35,
            "tx_id": st.none() | max35,
            "clr": st.none() | max35,
            "priority": st.none() | st.sampled_from(["URGT", "HIGH", "NORM"]),
            "chrg": st.sampled_from(["DEBT", "CRED", "SHAR", "SLEV"]),
            "dbtr_acct": accounts,
            "cdtr_acct": accounts,
            "dbtr_agt": agents,
            "cdtr_agt": agents,
            "purpose": st.none() | code4,
            "rmt": st.lists(free_text(side, 140), max_size=4).map(tuple),
            "spl": st.lists(supplementary(side), max_size=3).map(tuple),
        }
    )
    return st.builds(build, st.sampled_from(["customer", "institution"]), fields)


def reasons(side: Side, info_len: int, max_info: int) -> st.SearchStrategy[Reason]:
    code_or_prtry = st.one_of(st.tuples(code4, st.none()), st.tuples(st.none(), max35))
    return st.builds(
        lambda c, i: Reason(c[0], c[1], i),
        code_or_prtry,
        st.lists(free_text(side, info_len), max_size=max_info).map(tuple),
    )


msg_defs = st.sampled_from(["pacs.008.001.08", "pacs.009.001.08", "pacs.004.001.09"])
original_groups = st.builds(OriginalGroup, max35, msg_defs, st.none() | iso_datetime)
statuses = st.sampled_from(["ACTC", "ACCP", "ACSP", "ACSC", "PDNG", "RJCT"])


def status_reports(side: Side) -> st.SearchStrategy[StatusReport]:
    group = st.builds(
        GroupStatus,
        original_groups,
        st.none() | statuses,
        st.lists(reasons(side, 105, 2), max_size=3).map(tuple),
    )
    tx = st.builds(
        TransactionStatus,
        original_group=original_groups,
        status=statuses,
        status_id=st.none() | max35,
        original_instr_id=st.none() | max35,
        original_end_to_end_id=st.none() | max35,
        original_tx_id=st.none() | max35,
        original_uetr=st.none() | uuid4,
        reasons=st.lists(reasons(side, 105, 2), max_size=3).map(tuple),
        accepted_at=st.none() | iso_datetime,
        effective_settlement_date=st.none() | iso_date,
        clr_sys_ref=st.none() | max35,
        instructing=st.none() | agents,
        instructed=st.none() | agents,
    )
    return st.builds(StatusReport, max35, iso_datetime, st.none() | group, st.none() | tx)


def returns(side: Side) -> st.SearchStrategy[PaymentReturn]:
    return st.builds(
        PaymentReturn,
        msg_id=max35,
        created=iso_datetime,
        settlement_method=st.sampled_from(["CLRG", "INDA", "INGA"]),
        return_id=max35,
        original_group=original_groups,
        original_end_to_end_id=max35,
        original_uetr=uuid4,
        returned_amount=money,
        settlement_date=iso_date,
        instructing=agents,
        instructed=agents,
        reason=reasons(side, 105, 2),
        original_instr_id=st.none() | max35,
        original_tx_id=st.none() | max35,
        original_amount=st.none() | money,
        original_settlement_date=st.none() | iso_date,
        charge_bearer=st.none() | st.sampled_from(["DEBT", "CRED", "SHAR", "SLEV"]),
    )


isin = st.from_regex(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", fullmatch=True)
movements = st.sampled_from(["DELI", "RECE"])
payment_types = st.sampled_from(["FREE", "APMT"])
cash = st.none() | st.builds(CashLeg, money, st.sampled_from(["CRDT", "DBIT"]))


def sec_accounts(side: Side) -> st.SearchStrategy[SecuritiesAccount]:
    return st.builds(SecuritiesAccount, max35, st.none() | free_text(side, 70))


def parties(side: Side) -> st.SearchStrategy[SettlementParties | None]:
    party = st.none() | st.builds(
        SettlementParty,
        st.sampled_from(BICS + DEPOSITORIES),
        st.none() | lei,
        st.none() | sec_accounts(side),
    )
    return st.none() | st.builds(SettlementParties, st.sampled_from(DEPOSITORIES), party, party)


def instructions(side: Side) -> st.SearchStrategy[SecuritiesInstruction]:
    return st.builds(
        SecuritiesInstruction,
        tx_id=max35,
        movement=movements,
        payment=payment_types,
        settlement_date=iso_date,
        isin=isin,
        face_amount=decimal_text(14),
        owner_bic=st.sampled_from(BICS),
        account=sec_accounts(side),
        common_id=st.none() | max35,
        trade_date=st.none() | iso_date,
        description=st.none() | free_text(side, 140),
        owner_lei=st.none() | lei,
        delivering=parties(side),
        receiving=parties(side),
        cash=cash,
    )


def securities_statuses(side: Side) -> st.SearchStrategy[SecuritiesStatus]:
    rejection = st.builds(
        lambda c, i: Reason(c, None, i),
        st.sampled_from(["SAFE", "DSEC", "DDAT", "REFE", "DQUA", "CASH", "OTHR"]),
        st.lists(free_text(side, 210), max_size=1).map(tuple),
    )
    details = st.none() | st.builds(
        SecuritiesDetails,
        account=sec_accounts(side),
        isin=isin,
        face_amount=decimal_text(14),
        settlement_date=iso_date,
        movement=movements,
        payment=payment_types,
        owner_bic=st.none() | st.sampled_from(BICS),
        owner_lei=st.none(),
        description=st.none() | free_text(side, 140),
        cash=cash,
    )
    accepted = st.builds(
        lambda *a: SecuritiesStatus(a[0], True, (), a[1], a[2], a[3]),
        max35,
        st.none() | max35,
        st.none() | max35,
        details,
    )
    rejected = st.builds(
        lambda *a: SecuritiesStatus(a[0], False, a[4], a[1], a[2], a[3]),
        max35,
        st.none() | max35,
        st.none() | max35,
        details,
        st.lists(rejection, min_size=1, max_size=3).map(tuple),
    )
    return accepted | rejected


def confirmations(side: Side) -> st.SearchStrategy[SecuritiesConfirmation]:
    owner = st.one_of(
        st.tuples(st.none(), st.none()), st.tuples(st.sampled_from(BICS), st.none() | lei)
    )
    return st.builds(
        lambda o, **kw: SecuritiesConfirmation(owner_bic=o[0], owner_lei=o[1], **kw),
        owner,
        owner_tx_id=max35,
        movement=movements,
        payment=payment_types,
        effective_settlement_date=iso_date,
        isin=isin,
        face_amount=decimal_text(14),
        account=sec_accounts(side),
        servicer_tx_id=st.none() | max35,
        infrastructure_tx_id=st.none() | max35,
        trade_date=st.none() | iso_date,
        settlement_date=st.none() | iso_date,
        description=st.none() | free_text(side, 140),
        settled_cash=cash,
    )


def message_rejects(side: Side) -> st.SearchStrategy[MessageReject]:
    return st.builds(
        MessageReject,
        max35,
        code4,
        iso_datetime,
        free_text(side, 350),
        st.none() | free_text(side, 350),
    )


net_settlements = st.builds(
    lambda records, **kw: NetSettlement(
        records=tuple(
            MovementRecord(r[0], i + 1, r[1], r[2], r[3], r[4]) for i, r in enumerate(records)
        ),
        **kw,
    ),
    st.lists(
        st.tuples(
            max35,
            money,
            st.sampled_from(["CRDT", "DBIT"]),
            st.sampled_from(BICS),
            st.none() | account_id,
        ),
        min_size=2,
        max_size=6,
    ),
    msg_id=max35,
    created=iso_datetime,
    instruction_id=max35,
    cycle=max35,
    control_sum=st.none() | decimal_text(12),
)


def families(side: Side) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "payment": payments(side),
        "status": status_reports(side),
        "return": returns(side),
        "sese.023": instructions(side),
        "sese.024": securities_statuses(side),
        "sese.025": confirmations(side),
        "admi.002": message_rejects(side),
        "pacs.029": net_settlements,
    }


def round_trip(side: Side, body: Business) -> None:
    msg_id = getattr(body, "msg_id", "") or "-"
    created = getattr(body, "created", "") or "2026-01-01T00:00:00+08:00"
    enc = EncodeContext(dialect(side), DIRECTORY, CHARSET, msg=None)  # type: ignore[arg-type]
    msg_def, text = encode_text(enc, body, msg_id, created)
    document = etree.fromstring(text)
    assert enc.notes == [], "a value within the profile must not need fitting"
    header = build_header(
        fr=Party("SHHKCNSHGWY"),
        to=Party("CIPSCNSHXXX"),
        biz_msg_idr="RT-1",
        msg_def=msg_def,
        created=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = envelope(header, document)
    msg = read_message(data)
    PROFILES[side].validate(msg)
    decoded = decode(DecodeContext(dialect(side), DIRECTORY, msg))
    assert decoded == body
    again = encode_text(
        EncodeContext(dialect(side), DIRECTORY, CHARSET, msg=None),  # type: ignore[arg-type]
        decoded,
        msg_id,
        created,
    )[1]
    assert again == text


@pytest.mark.parametrize("side", ["onshore", "offshore"])
@pytest.mark.parametrize("name", list(families("onshore")))
def test_round_trip_is_lossless(side: Side, name: str) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(families(side)[name])
    def check(body: Business) -> None:
        round_trip(side, body)

    check()
