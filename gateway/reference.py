"""Reference data: what every step consults and no message changes, as one value.

The participant directory (reloaded when its file changes, in one place: `ReloadingDirectory`),
the holiday calendars, the character-set policy, each side's profiles, the gateway's signer
and the clock. Loaded once per process from the configuration; the translation, the pipeline
and the cycle manager are each handed it, rather than borrowing one another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.calendars import Calendars
from gateway.certificates import CertificateError
from gateway.charset import CharsetPolicy
from gateway.charset import prepare as prepare_charset
from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.directory import DirectoryError, ReloadingDirectory
from gateway.directory import path_of as directory_path
from gateway.iso20022.profiles import ProfileSet
from gateway.messages.registry import profile_set
from gateway.sides import SIDES, Side
from gateway.signatures import Signer, signer_for


@dataclass(frozen=True)
class ReferenceData:
    directory: ReloadingDirectory
    calendars: Calendars
    charset: CharsetPolicy
    profiles: Mapping[Side, ProfileSet]
    signer: Signer | None
    clock: Clock

    @classmethod
    def load(
        cls,
        config: Config,
        clock: Clock = now_utc8,
        directory: ReloadingDirectory | None = None,
    ) -> ReferenceData:
        """From the configuration's files (the bundled samples where it names none)."""
        tr = config.translation
        return cls(
            directory=directory
            or ReloadingDirectory(
                directory_path(tr.directory),
                needs_certificates=config.security.require_signatures,
            ),
            calendars=Calendars.load(Path(tr.calendars) if tr.calendars else None),
            charset=CharsetPolicy.load(Path(tr.charset_policy) if tr.charset_policy else None),
            profiles={side: profile_set(side, config.schemas_path) for side in SIDES},
            signer=signer_for(config.security),
            clock=clock,
        )

    def prepare(self) -> ReferenceData:
        """Compile every profile and load the transliteration now (a service, at start);
        otherwise each is done when first needed."""
        for profiles in self.profiles.values():
            profiles.compile_all()
        prepare_charset()
        return self


class ReferenceDataError(Exception):
    """Reference data the gateway cannot run with: one line, for `config check` and `run`."""


def preflight(config: Config, clock: Clock = now_utc8) -> ReferenceData:
    """Everything `run` loads before its first record, loaded and prepared: the directory with
    every certificate it lists (and one for every sender when signatures are required), the
    calendars, the charset policy, every profile and the signing key. `config check` calls
    this very function, so it fails exactly when `run` would."""
    try:
        return ReferenceData.load(config, clock).prepare()
    except (DirectoryError, CertificateError, OSError, ValueError, RuntimeError) as exc:
        raise ReferenceDataError(f"reference data: {exc}") from None
