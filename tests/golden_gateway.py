"""The golden cases (tests/golden/cases.toml) run through a translator whose directory lists a
certificate for everyone in the sample directory, as the property tests of what reaches the
gateway need them: each message signed by its sender (signatures on) or not (off).

The sample directory lets JADBCNBJXXX send for HPCBCNSHXXX (`sends_for`), a service bureau
relation for the authorisation properties to find.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config, SecuritySection, TranslationSection
from gateway.correlations import Correlation, MemoryCorrelations
from gateway.directory import Directory, default_path, load_directory
from gateway.translation import Outcome, Translator
from tests.conftest import ROOT
from tests.signing import Identity, directory_with, identity, signed
from tests.test_golden import FIXED

SAMPLE_DIRECTORY: Directory = load_directory(default_path())
# Everyone who may stand in AppHdr Fr: participants, depositories, the sides' systems.
SIGNATORIES: tuple[str, ...] = (
    *SAMPLE_DIRECTORY.participants,
    *SAMPLE_DIRECTORY.depositories,
    *SAMPLE_DIRECTORY.systems,
)
SENDS_FOR = {"JADBCNBJXXX": ("HPCBCNSHXXX",)}
_FR = re.compile(rb"<Fr>\s*<FIId>\s*<FinInstnId>\s*<BICFI>([A-Z0-9]+)</BICFI>")


def sender_of(data: bytes) -> str | None:
    """AppHdr Fr's BIC as written."""
    found = _FR.search(data)
    return found.group(1).decode() if found else None


@dataclass
class Gateway:
    translator: Translator
    people: dict[str, Identity] = dataclasses.field(repr=False)
    signatures: bool

    def signed_by(self, data: bytes, bic: str | None) -> bytes:
        """`data` as `bic` sends it: signed with its key when signatures are on."""
        if not self.signatures or bic not in self.people:
            return data
        return signed(data, self.people[bic])

    def as_sent(self, data: bytes) -> bytes:
        """The message as its sender sends it: signed by AppHdr Fr when signatures are on."""
        return self.signed_by(data, sender_of(data))

    def outcome(
        self, case: dict[str, Any], data: bytes, known: tuple[Correlation, ...] = ()
    ) -> Outcome:
        """`data` processed as `case` says: its originals first, then it, from its side."""
        t, correlations = self.translator, MemoryCorrelations(known)
        for original in case.get("originals", []):
            side = case.get(
                "originals_from", "offshore" if case["from"] == "onshore" else "onshore"
            )
            primed = t.process(self.as_sent((ROOT / original).read_bytes()), side, correlations)
            assert primed.accepted, primed.error
        return t.process(data, case["from"], correlations)


def golden_gateway(folder: Path, signatures: bool) -> Gateway:
    people = {bic: identity(bic, valid_from_days=-90) for bic in (*SIGNATORIES, "SHHKCNSHGWY")}
    directory = directory_with(
        folder,
        {bic: [people[bic]] for bic in SIGNATORIES},
        **{bic: f"sends_for = {list(bics)!r}".replace("'", '"') for bic, bics in SENDS_FOR.items()},
    )
    security = SecuritySection()
    if signatures:
        (folder / "gw.key").write_bytes(people["SHHKCNSHGWY"].key_pem)
        (folder / "gw.pem").write_bytes(people["SHHKCNSHGWY"].cert_pem)
        security = SecuritySection(
            require_signatures=True,
            signing_key_file=str(folder / "gw.key"),
            signing_certificate_file=str(folder / "gw.pem"),
        )
    config = dataclasses.replace(
        Config(), translation=TranslationSection(directory=str(directory)), security=security
    )
    return Gateway(Translator(config, clock=lambda: FIXED).prepare(), people, signatures)
