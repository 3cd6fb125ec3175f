"""Participant directory, calendars and the charset policy: the data the translation runs on."""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import date
from pathlib import Path

import pytest

from gateway.calendars import CalendarError, Calendars, load_calendar
from gateway.charset import CharsetPolicy, CharsetRefusal, FieldPolicy, transliterate
from gateway.directory import (
    DirectoryError,
    ReloadingDirectory,
    default_path,
    lei_is_valid,
    load_directory,
)


def test_the_bundled_directory_loads() -> None:
    d = load_directory(default_path())
    assert d.version
    hpcb = d.participant("HPCBCNSHXXX")
    assert hpcb is not None and hpcb.side == "onshore"
    assert hpcb.member_id("CNAPS") == "313290012345" and hpcb.member_id("HKNCC") == "901"
    assert d.participant("HPCBCNSH") is hpcb  # an 8-character BIC is its XXX branch
    assert d.nominee("northbound", "CCDCCNBJXXX") is not None
    assert d.nominee("southbound", "CCDCCNBJXXX") is None


def test_lei_check_digits() -> None:
    assert lei_is_valid("5493001KJTIIGC8Y1R12")
    assert not lei_is_valid("5493001KJTIIGC8Y1R13")
    assert not lei_is_valid("5493001KJTIIGC8Y1R1")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('bic = "HPCBCNSHXXX"', 'bic = "HPCB-CNSH"', "is not a BIC"),
        ('lei = "5493001KJTIIGC8Y1R12"', 'lei = "5493001KJTIIGC8Y1R13"', "ISO 17442 check digits"),
        ('cnaps = "313290012345"', 'cnaps = "31329001234"', "must be 12 digits"),
        ('hk_code = "901"', 'hk_code = "9O1"', "must be 3 digits"),
        ('hk_code = "901"', 'hk_code = "902"', "hk_code 902 already used"),
        ('net_debit_cap = "50000000000.00"', 'net_debit_cap = "-1"', "non-negative decimal"),
        ('side = "onshore"', 'side = "mainland"', "side must be onshore or offshore"),
        ('version = "2026-11-20.1"', "", "version: a non-empty string is required"),
        (
            'depository_bic = "SHCHCNSHXXX"',
            'depository_bic = "XXXXCNSHXXX"',
            "not a listed depository",
        ),
    ],
)
def test_a_bad_directory_is_refused_with_the_reason(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = default_path().read_text()
    assert old in text
    bad = tmp_path / "participants.toml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(DirectoryError) as caught:
        load_directory(bad)
    assert message in str(caught.value)


def test_the_directory_reloads_without_restart_and_keeps_the_last_good_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "participants.toml"
    shutil.copy(default_path(), path)
    live = ReloadingDirectory(path, interval=0)
    first = live.current()
    assert first.participant("KLBKHKHHXXX") is not None

    def rewrite(text: str) -> None:
        path.write_text(text)
        later = time.time() + 5  # a distinct mtime even on coarse file systems
        os.utime(path, (later, later))

    text = path.read_text()
    rewrite(
        text.replace('version = "2026-11-20.1"', 'version = "2026-11-21.1"').replace(
            'net_debit_cap = "20000000000.00"', 'net_debit_cap = "25000000000.00"'
        )
    )
    second = live.current()
    assert second.version == "2026-11-21.1"
    cap = second.participant("KLBKHKHHXXX")
    assert cap is not None and str(cap.net_debit_cap) == "25000000000.00"

    os.utime(path, None)
    rewrite(text.replace('lei = "5493001KJTIIGC8Y1R12"', 'lei = "BROKEN"'))
    with caplog.at_level(logging.ERROR, logger="gateway.directory"):
        assert live.current().version == "2026-11-21.1"  # refused: the last good one stays
    assert any("lei" in r.getMessage() for r in caplog.records), caplog.text


def test_calendars_need_a_business_day_on_both_sides() -> None:
    cal = Calendars.load()
    assert cal.is_common_business_day(date(2026, 11, 23))  # a Monday
    assert not cal.is_common_business_day(date(2026, 11, 21))  # Saturday
    assert not cal.is_common_business_day(date(2026, 10, 1))  # closed on both sides
    assert not cal.is_common_business_day(date(2026, 4, 3))  # Good Friday: Hong Kong only
    assert cal.closed_on(date(2026, 4, 3)) == ["CNY offshore (RMB CHATS)"]
    # An adjusted working Sunday onshore is still closed offshore.
    assert cal.onshore.is_business_day(date(2026, 2, 28))
    assert not cal.is_common_business_day(date(2026, 2, 28))
    assert cal.next_common_business_day(date(2026, 10, 1)) == date(2026, 10, 8)


def test_a_calendar_that_contradicts_itself_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'weekend = ["Sunday"]\nholidays = ["2026-01-04"]\nworking_weekends = ["2026-01-04"]\n'
    )
    with pytest.raises(CalendarError, match="both holiday and working"):
        load_calendar(bad)


def test_transliteration() -> None:
    assert transliterate("张伟") == "ZHANG WEI"
    assert transliterate("上海浦江贸易有限公司") == "SHANG HAI PU JIANG MAO YI YOU XIAN GONG SI"
    assert transliterate("货款 INV-2026-0042") == "HUO KUAN INV-2026-0042"
    assert transliterate("ＡＢＣ１２３") == "ABC123"  # full-width forms
    assert transliterate("Zoë Müller") == "Zoe Muller"


def test_charset_policy_per_field() -> None:
    policy = CharsetPolicy(
        {
            "name": FieldPolicy("transliterate", keep_original=True),
            "strict": FieldPolicy("reject"),
            "memo": FieldPolicy("transliterate", truncate=True),
        },
        FieldPolicy(),
    )
    fitted = policy.fit("name", "张伟", 140)
    assert (fitted.text, fitted.changed, fitted.truncated_from) == ("ZHANG WEI", True, None)
    assert policy.fit("name", "CHAN TAI MAN", 140).changed is False
    with pytest.raises(CharsetRefusal, match="non-Latin text is not accepted"):
        policy.fit("strict", "张伟", 140)
    with pytest.raises(CharsetRefusal, match="does not allow truncation"):
        policy.fit("name", "张伟" * 20, 35)
    memo = policy.fit("memo", "张伟" * 20, 35)
    assert memo.truncated_from == len(transliterate("张伟" * 20)) and len(memo.text) <= 35
    assert set(memo.text.split()) <= {"ZHANG", "WEI"}  # cut at a word boundary
    with pytest.raises(CharsetRefusal, match="U\\+1F600"):
        policy.fit("name", "CHAN 😀", 140)


def test_the_bundled_charset_policy_loads() -> None:
    policy = CharsetPolicy.load()
    assert policy.policy("debtor.name").keep_original
    assert policy.policy("anything.else") == policy.default
