"""The message-type registry (gateway/messages/): each registered type is whole (profiles on
both sides, samples of both dialects, paths that exist), and the tables derived from it agree
with what the types declare."""

from __future__ import annotations

import pytest

from gateway.idempotency import extract_keys
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.messages.registry import BY_DEF, CAPPED, DOCUMENT_MESSAGES, TYPES
from tests.conftest import ROOT, SAMPLES

SIDES = ("onshore", "offshore")


@pytest.mark.parametrize("kind", TYPES, ids=lambda t: t.msg_def)
@pytest.mark.parametrize("side", SIDES)
def test_every_registered_type_has_a_profile_and_a_sample_on_each_side(
    kind: object, side: str, profiles: dict[str, ProfileSet]
) -> None:
    msg_def = kind.msg_def  # type: ignore[attr-defined]
    assert (ROOT / "schemas" / side / f"{msg_def}.xsd").is_file()
    sample = SAMPLES / side / f"{msg_def}.xml"
    assert sample.is_file(), f"no {side} sample of {msg_def}"
    msg = read_message(sample.read_bytes())
    assert msg.msg_def == msg_def
    profiles[side].validate(msg)
    assert next(iter(msg.document)).tag.endswith("}" + kind.root)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", TYPES, ids=lambda t: t.msg_def)
def test_every_named_path_of_a_type_is_in_its_sample(kind: object) -> None:
    msg = read_message((SAMPLES / "onshore" / f"{kind.msg_def}.xml").read_bytes())  # type: ignore[attr-defined]
    for name in kind.paths:  # type: ignore[attr-defined]
        path = kind.path(name)  # type: ignore[attr-defined]
        if name in ("agent", "orgnl_msg_id", "cycle"):  # optional in the standard
            continue
        assert msg.doc_text(path), f"{kind.msg_def}: {name} at {path} is not in the sample"  # type: ignore[attr-defined]


def test_the_derived_tables_follow_the_types() -> None:
    assert DOCUMENT_MESSAGES == tuple(t.msg_def for t in TYPES)
    assert CAPPED == {"pacs.008.001.08", "pacs.009.001.08", "sese.023.001.09"}
    assert set(BY_DEF) == set(DOCUMENT_MESSAGES)


@pytest.mark.parametrize(
    ("msg_def", "transaction"),
    [
        ("pacs.008.001.08", "uetr:0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"),
        ("sese.023.001.09", "sese:"),
    ],
)
def test_keys_come_from_the_types_paths(msg_def: str, transaction: str) -> None:
    keys = extract_keys(read_message((SAMPLES / "onshore" / f"{msg_def}.xml").read_bytes()))
    assert keys.transactions and keys.transactions[0].startswith(transaction)
