"""The capture format: JSON Lines, one Kafka record per line (docs/capture-format.md).

A record's key, value and header values are kept as UTF-8 text when they decode, else as
base64 with a flag, so a capture of ISO 20022 traffic can be read and diffed as text and a
capture of anything else still round-trips byte for byte. `version` lets readers refuse a
format they do not know.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


class CaptureError(ValueError):
    pass


@dataclass(frozen=True)
class Captured:
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch, the broker's
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
        }
        out.update(_field("key", self.key))
        out.update(_field("value", self.value))
        out["headers"] = [{"name": name, **_field("value", value)} for name, value in self.headers]
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str, where: str = "capture") -> Captured:
        try:
            raw = json.loads(line)
            if raw.get("version") != FORMAT_VERSION:
                raise CaptureError(
                    f"{where}: format version {raw.get('version')!r}, this reader knows "
                    f"{FORMAT_VERSION}"
                )
            return cls(
                str(raw["topic"]),
                int(raw["partition"]),
                int(raw["offset"]),
                int(raw["timestamp"]),
                _read(raw, "key"),
                _read(raw, "value"),
                tuple((str(h["name"]), _read(h, "value") or b"") for h in raw["headers"]),
            )
        except CaptureError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CaptureError(f"{where}: not a capture record ({exc})") from None


def _field(name: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {name: base64.b64encode(data).decode("ascii"), f"{name}_base64": True}


def _read(raw: dict[str, Any], name: str) -> bytes | None:
    value = raw.get(name)
    if value is None:
        return None
    if raw.get(f"{name}_base64"):
        return base64.b64decode(value, validate=True)
    return str(value).encode("utf-8")


def read_capture(path: Path) -> Iterator[Captured]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                yield Captured.from_json(line, f"{path}:{n}")


class CaptureWriter:
    """Writes to FILE.part and renames it to FILE when closed: a capture that exists is
    complete (an interrupted one leaves only the .part, with whole lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self._fh = open(self.partial, "w", encoding="utf-8")
        self.count = 0

    def write(self, records: list[Captured]) -> None:
        """Whole lines only: a record is in the file entirely or not at all."""
        self._fh.write("".join(r.to_json() + "\n" for r in records))
        self.count += len(records)

    def close(self) -> None:
        self._fh.flush()
        self._fh.close()
        self.partial.replace(self.path)
