"""A participant's statement of a cycle: its id and its text, the same whether the close
issues it (gateway/settlement/statement.py) or a camt.060 asks for it again later
(gateway/flows/reports.py), so both give the very statement."""

from __future__ import annotations

from gateway.iso20022.ids import derive_id


def statement_id(cycle: str, bic: str) -> str:
    """A participant's statement of a cycle, by id: as the close issues it, and as a request
    for it later names it (gateway/flows/reports.py)."""
    return derive_id("ST", cycle, bic)


def statement_info(cycle: str, instruction_id: str | None) -> str:
    info = f"Settlement cycle {cycle}"
    return f"{info}; settlement request {instruction_id}" if instruction_id else info
