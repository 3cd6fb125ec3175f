"""The participant directory: who may use the gateway, and under which identifiers on each side.

Loaded from a versioned TOML file (data/participants.toml), validated as a whole (BIC format,
LEI ISO 17442 check digits, 12-digit CNAPS and 3-digit HKNCC codes, uniqueness), and reloaded
without restart by `ReloadingDirectory` when the file changes. A file that fails validation is
refused with the reasons and the previous version stays in force.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from gateway.certificates import (
    Certificate,
    CertificateError,
    load_certificate,
    read_certificate,
)
from gateway.packaged import packaged
from gateway.sides import Side

log = logging.getLogger(__name__)

Flow = Literal["northbound", "southbound"]

BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")
CNAPS = re.compile(r"[0-9]{12}")
HK_CODE = re.compile(r"[0-9]{3}")
LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}")


def default_path() -> Path:
    return packaged("data", "participants.toml")


def path_of(configured: str) -> Path:
    """The directory a configuration names (`translation.directory`), or the bundled sample
    when it names none."""
    return Path(configured) if configured else default_path()


def bic11(bic: str) -> str:
    """A BIC in its 11-character form (an 8-character one is its head office, XXX)."""
    return bic + "XXX" if len(bic) == 8 else bic


def lei_is_valid(lei: str) -> bool:
    """ISO 17442: ISO 7064 MOD 97-10 over the 20 characters (letters as 10..35) equals 1."""
    if not LEI.fullmatch(lei):
        return False
    return int("".join(str(int(ch, 36)) for ch in lei)) % 97 == 1


class DirectoryError(ValueError):
    pass


@dataclass(frozen=True)
class Participant:
    bic: str
    name: str
    side: Side
    cnaps: str
    hk_code: str
    lei: str
    settlement_account: str
    net_debit_cap: Decimal
    # Signing certificates (several at once while a key is rotated), and the participants
    # whose messages it may sign as AppHdr Fr besides its own (a service bureau, say).
    certificates: tuple[Certificate, ...] = ()
    sends_for: tuple[str, ...] = ()

    def member_id(self, clearing_system: str) -> str:
        return self.cnaps if clearing_system == "CNAPS" else self.hk_code


@dataclass(frozen=True)
class Depository:
    bic: str
    name: str
    side: Side
    certificates: tuple[Certificate, ...] = ()
    sends_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class System:
    """A side's own system that sends messages (the RTGS confirming a cycle's settlement)."""

    bic: str
    name: str
    certificates: tuple[Certificate, ...] = ()
    sends_for: tuple[str, ...] = ()


# Whoever may sign a message as AppHdr Fr.
Signatory = Participant | Depository | System


@dataclass(frozen=True)
class Nominee:
    flow: Flow
    depository_bic: str
    owner_bic: str
    account: str


@dataclass(frozen=True)
class Directory:
    version: str
    participants: dict[str, Participant]
    depositories: dict[str, Depository]
    nominees: tuple[Nominee, ...]
    systems: dict[str, System] = field(default_factory=dict)
    # Agents as the codecs render them, per dialect: a function of this version only.
    encoded_agents: dict[tuple[str | None, ...], str] = field(
        default_factory=dict, compare=False, repr=False
    )

    def participant(self, bic: str) -> Participant | None:
        found = self.participants.get(bic)
        if found is None and len(bic) == 8:
            found = self.participants.get(bic + "XXX")
        return found

    def by_member_id(self, clearing_system: str, member_id: str) -> Participant | None:
        return self._members.get((clearing_system, member_id))

    def signatory(self, bic: str) -> Signatory | None:
        """A participant, depository or system that may sign as AppHdr Fr."""
        return self.participant(bic) or self.depositories.get(bic) or self.systems.get(bic)

    def certificate(self, fingerprint: str) -> tuple[Signatory, Certificate] | None:
        """Whose certificate this is (SHA-256 fingerprint of its DER form), if anyone's."""
        return self._certificates.get(fingerprint)

    @cached_property
    def signatories(self) -> tuple[Signatory, ...]:
        """Everyone who may sign as AppHdr Fr: participants, depositories, systems."""
        return (*self.participants.values(), *self.depositories.values(), *self.systems.values())

    @cached_property
    def _certificates(self) -> dict[str, tuple[Signatory, Certificate]]:
        return {c.fingerprint: (s, c) for s in self.signatories for c in s.certificates}

    @cached_property
    def _members(self) -> dict[tuple[str, str], Participant]:
        """(clearing system, member id) -> participant, built once per directory version."""
        return {
            (system, p.member_id(system)): p
            for p in self.participants.values()
            for system in ("CNAPS", "HKNCC")
        }

    def nominee(self, flow: Flow, depository_bic: str) -> Nominee | None:
        return next(
            (n for n in self.nominees if n.flow == flow and n.depository_bic == depository_bic),
            None,
        )


def load_directory(path: Path, needs_certificates: bool = False) -> Directory:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise DirectoryError(f"cannot read participant directory {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"participant directory {path} is not valid TOML: {exc}") from None
    return parse_directory(raw, str(path), base=path.parent, needs_certificates=needs_certificates)


def parse_directory(
    raw: dict[str, Any],
    source: str = "directory",
    base: Path | None = None,
    needs_certificates: bool = False,
) -> Directory:
    """`base`: where certificate files named relative to the directory file are.

    `needs_certificates` (signatures required): every entry that may send must list a
    certificate, or none of its messages could ever be accepted; such a version is refused
    as a whole, like any other bad entry, rather than found out from a partner's DS21s."""
    problems: list[str] = []
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        problems.append("version: a non-empty string is required")
    participants: dict[str, Participant] = {}
    seen: dict[tuple[str, str], str] = {}
    for i, entry in enumerate(raw.get("participant", [])):
        where = f"participant[{i}]"
        p = _participant(entry, where, problems, base or Path("."))
        if p is None:
            continue
        for label, value in (
            ("bic", p.bic),
            ("cnaps", p.cnaps),
            ("hk_code", p.hk_code),
            ("lei", p.lei),
        ):
            other = seen.get((label, value))
            if other:
                problems.append(f"{where}: {label} {value} already used by {other}")
            seen[(label, value)] = p.bic
        participants[p.bic] = p
    if not participants:
        problems.append("no participant")
    depositories: dict[str, Depository] = {}
    for i, entry in enumerate(raw.get("depository", [])):
        where = f"depository[{i}]"
        bic, name, side = entry.get("bic", ""), entry.get("name", ""), entry.get("side")
        if not BIC.fullmatch(str(bic)):
            problems.append(f"{where}: bic {bic!r} is not a BIC")
        if side not in ("onshore", "offshore"):
            problems.append(f"{where}: side must be onshore or offshore")
            continue
        certificates, sends_for = _signing(entry, where, problems, base or Path("."))
        depositories[bic] = Depository(bic, str(name), side, certificates, sends_for)
    systems: dict[str, System] = {}
    for i, entry in enumerate(raw.get("system", [])):
        where = f"system[{i}]"
        bic = str(entry.get("bic", ""))
        if not BIC.fullmatch(bic):
            problems.append(f"{where}: bic {bic!r} is not a BIC")
        certificates, sends_for = _signing(entry, where, problems, base or Path("."))
        systems[bic] = System(bic, str(entry.get("name", "")), certificates, sends_for)
    nominees: list[Nominee] = []
    for i, entry in enumerate(raw.get("nominee", [])):
        where = f"nominee[{i}]"
        flow = entry.get("flow")
        dep, owner, account = (
            str(entry.get(k, "")) for k in ("depository_bic", "owner_bic", "account")
        )
        if flow not in ("northbound", "southbound"):
            problems.append(f"{where}: flow must be northbound or southbound")
            continue
        if dep not in depositories:
            problems.append(f"{where}: depository {dep!r} is not a listed depository")
        if not BIC.fullmatch(owner) or not account:
            problems.append(f"{where}: owner_bic must be a BIC and account non-empty")
        nominees.append(Nominee(flow, dep, owner, account))
    directory = Directory(str(version or ""), participants, depositories, tuple(nominees), systems)
    if needs_certificates:
        if lacking := [s.bic for s in directory.signatories if not s.certificates]:
            problems.append(
                "signatures are required, but no certificate is enrolled for " + ", ".join(lacking)
            )
    if problems:
        raise DirectoryError(f"{source} refused: " + "; ".join(problems))
    return directory


def _participant(entry: Any, where: str, problems: list[str], base: Path) -> Participant | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    values = {
        k: str(entry.get(k, ""))
        for k in (
            "bic",
            "name",
            "side",
            "cnaps",
            "hk_code",
            "lei",
            "settlement_account",
            "net_debit_cap",
        )
    }
    before = len(problems)
    if not BIC.fullmatch(values["bic"]):
        problems.append(f"{where}: bic {values['bic']!r} is not a BIC (8 or 11 characters)")
    if values["side"] not in ("onshore", "offshore"):
        problems.append(f"{where}: side must be onshore or offshore")
    if not CNAPS.fullmatch(values["cnaps"]):
        problems.append(f"{where}: cnaps {values['cnaps']!r} must be 12 digits")
    if not HK_CODE.fullmatch(values["hk_code"]):
        problems.append(f"{where}: hk_code {values['hk_code']!r} must be 3 digits")
    if not lei_is_valid(values["lei"]):
        problems.append(f"{where}: lei {values['lei']!r} fails the ISO 17442 check digits")
    if not values["name"] or not values["settlement_account"]:
        problems.append(f"{where}: name and settlement_account are required")
    try:
        cap = Decimal(values["net_debit_cap"])
        if not cap.is_finite() or cap < 0:
            raise InvalidOperation
    except InvalidOperation:
        problems.append(
            f"{where}: net_debit_cap {values['net_debit_cap']!r} must be a non-negative decimal"
        )
        cap = Decimal(0)
    certificates, sends_for = _signing(entry, where, problems, base)
    if len(problems) > before:
        return None
    return Participant(
        values["bic"],
        values["name"],
        values["side"],  # type: ignore[arg-type]
        values["cnaps"],
        values["hk_code"],
        values["lei"],
        values["settlement_account"],
        cap,
        tuple(certificates),
        sends_for,
    )


def _signing(
    entry: dict[str, Any], where: str, problems: list[str], base: Path
) -> tuple[tuple[Certificate, ...], tuple[str, ...]]:
    """An entry's signing certificates and `sends_for`.

    A certificate is given inline (its PEM text, so the directory is one file that a
    Kubernetes ConfigMap or a compose config can hold) or as a file named relative to the
    directory (a flat folder mounted beside it)."""
    certificates = []
    for i, name in enumerate(entry.get("certificates", [])):
        text = str(name)
        try:
            if text.lstrip().startswith("-----BEGIN"):
                certificates.append(read_certificate(text.encode(), f"{where} certificate {i}"))
            else:
                certificates.append(load_certificate(base / text))
        except CertificateError as exc:
            problems.append(f"{where}: {exc}")
    sends_for = tuple(str(b) for b in entry.get("sends_for", []))
    if any(not BIC.fullmatch(b) for b in sends_for):
        problems.append(f"{where}: sends_for must list BICs")
    # 11 characters, as participants are keyed: compared per message (gateway/authorisation.py).
    return tuple(certificates), tuple(bic11(b) for b in sends_for)


class ReloadingDirectory:
    """The current directory; re-reads the file when its modification time changes.

    Checked at most once per `interval` seconds on access, so a hot path can ask for
    `current()` per message. Thread-safe: readers always see one whole version.
    """

    def __init__(self, path: Path, interval: float = 1.0, needs_certificates: bool = False) -> None:
        self.path = path
        self.interval = interval
        self.needs_certificates = needs_certificates
        self._lock = threading.Lock()
        self._directory = load_directory(path, needs_certificates)
        self._stamp = self._mtime()
        self._checked = time.monotonic()
        self.failures = 0  # versions refused since start (a metric: gateway/ops/metrics.py)

    def _mtime(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return -1

    def current(self) -> Directory:
        now = time.monotonic()
        if now - self._checked >= self.interval:
            self._checked = now
            self.reload_if_changed()
        return self._directory

    def reload_if_changed(self) -> bool:
        stamp = self._mtime()
        if stamp == self._stamp:
            return False
        with self._lock:
            try:
                fresh = load_directory(self.path, self.needs_certificates)
            except DirectoryError as exc:
                log.error(
                    "participant directory not reloaded, version %s stays in force: %s",
                    self._directory.version,
                    exc,
                )
                self._stamp = stamp  # do not retry the same broken file on every access
                self.failures += 1
                return False
            log.info(
                "participant directory reloaded: version %s -> %s",
                self._directory.version,
                fresh.version,
            )
            self._directory, self._stamp = fresh, stamp
            return True
