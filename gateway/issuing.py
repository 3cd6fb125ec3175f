"""Every message the gateway issues, built one way: the body encoded in the receiving side's
dialect, the gateway's AppHdr to the receiver, the envelope, then the check against that side's
profile. What the gateway issues is held to the same profile as what it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from gateway.adapters import dialect
from gateway.canonical import Business
from gateway.charset import CharsetPolicy
from gateway.codec.context import EncodeContext
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.builders import (
    Party,
    build_header,
    envelope_element,
    envelope_text,
    header_spec,
    iso_datetime,
    plain,
    serialise,
)
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import BusinessMessage
from gateway.messages.registry import encode_text
from gateway.sides import Side
from gateway.signatures import signer_for


@dataclass(frozen=True)
class Issued:
    msg_def: str
    data: bytes  # the envelope, UTF-8
    notes: tuple[str, ...]  # what the charset policy did to the text (kept originals, ...)


def issue(
    body: Business,
    *,
    side: Side,
    msg_id: str,
    biz_msg_idr: str,
    created: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: ProfileSet,
    to: str | None = None,
    source: BusinessMessage | None = None,
    check: Callable[[str, etree._Element], None] | None = None,
) -> Issued:
    """`body` as a message from the gateway to `side`: to `to` (default: the side's system),
    with `msg_id` and `biz_msg_idr`, created at `created`. `source`: the message it
    translates, if any (its text is the charset policy's original). `check`: how a failed
    check is answered (default: the profile's error is raised).

    Rendered as text and parsed once: the profile validates that tree, the signer signs it
    (unsigned, the rendered text is the output, byte for byte)."""
    assert profiles.side == side, f"{side} message checked against the {profiles.side} profile"
    ctx = EncodeContext(dialect(side), directory, charset, source)
    msg_def, document = encode_text(ctx, body, msg_id, iso_datetime(created))
    header = header_spec(**_header(config, side, to, biz_msg_idr, msg_def, created))
    data = plain(envelope_text(header, document).encode("utf-8"))
    root = etree.fromstring(data)  # the gateway's own text: nothing in it to harden against
    if check is not None:
        check(msg_def, root)
    else:
        profiles.validate_built(msg_def, root)
    signer = signer_for(config.security)
    if signer is not None:
        signer.sign(root)
        data = serialise(root)
    return Issued(msg_def, data, tuple(ctx.notes))


def _header(
    config: Config, side: Side, to: str | None, biz_msg_idr: str, msg_def: str, created: datetime
) -> dict[str, Any]:
    """The gateway's AppHdr to `side`: from the gateway, to `to` or the side's system."""
    return {
        "fr": Party(config.gateway.bic),
        "to": Party(to or config.side(side).system_bic),
        "biz_msg_idr": biz_msg_idr,
        "msg_def": msg_def,
        "created": created,
        "biz_svc": config.side(side).biz_svc,
    }


def issue_document(
    document: etree._Element,
    msg_def: str,
    *,
    side: Side,
    biz_msg_idr: str,
    created: datetime,
    config: Config,
    to: str | None = None,
    check: Callable[[str, etree._Element], None],
) -> bytes:
    """A Document the gateway carried (gateway/carry.py) as a message from the gateway to
    `side`: the same AppHdr and envelope as `issue`, then `check` on the envelope element
    (raises if the document does not hold to `side`'s profile)."""
    header = build_header(**_header(config, side, to, biz_msg_idr, msg_def, created))
    root = envelope_element(header, document)
    check(msg_def, root)
    signer = signer_for(config.security)
    if signer is not None:
        signer.sign(root)
    return serialise(root)
