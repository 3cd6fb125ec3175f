"""Who may send what: every message is authorised by the role its type declares
(`Sender` in gateway/messages/), whatever identifiers it uses, with signatures on or off.

The translation finds, per message, the party its role entitles: from the message itself for
an instruction (its instructing party, resolved through the directory by BIC and/or member
id), from the correlation for an answer (who received the original), from the configuration
for the RTGS's confirmation of a cycle. It then asks `authorise`, which is pure. The sender is
AppHdr Fr, resolved through the directory the same way; when the message is signed the
signature has already proved that the signer is Fr (gateway/signatures.py).

Refusals (each with no effect: a reject to the sender, a copy on the DLQ):
  RC01  AppHdr Fr is not in the directory, or its BIC and member id name different parties
  AG01  the message names, in its role, another party than the one entitled; or, unsigned,
        Fr is not the entitled party and does not send for it; or nobody is known to be
        entitled (an answer to an original correlated before the gateway kept its receiver)
  DS19  signed by Fr, which is not the entitled party and may not sign for it (`sends_for`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.codec.context import scheme_participant
from gateway.directory import Directory, bic11
from gateway.iso20022 import errors
from gateway.iso20022.reader import BusinessMessage, message_ids, refusal
from gateway.iso20022.tree import one, txt

# Who may send a message of a type (docs/domain.md, "Who may send what"); the party a role
# names is found per message by the translation and checked here:
#   instructing         the instructing party the message itself names (its payer, its
#                       account owner), resolved through the directory
#   payment_instructor  the instructing party of the payment it names, as the gateway
#                       correlated that payment
#   original_receiver   the party that received the original it answers, as the gateway
#                       correlated it (a payment's instructed agent, a securities
#                       instruction's depository, the RTGS system for a cycle's instruction)
#   payment_party       the instructing party of the payment it names, or its receiver, as
#                       the gateway correlated that payment (a status enquiry)
#   gateway             nobody: the gateway issues it, and refuses it from a side (AG01)
# AppHdr Fr must be that party, or send for it (`sends_for`); with a signature, the signer is
# Fr (gateway/signatures.py).
Sender = Literal[
    "instructing", "payment_instructor", "original_receiver", "payment_party", "gateway"
]

# Short: a refusal's text must fit a reject's AddtlInf (105 characters) whole.
ROLES: dict[Sender, str] = {
    "instructing": "the instructing party",
    "payment_instructor": "the payment's instructing party",
    "original_receiver": "the original's receiver",
    "payment_party": "the payment's instructing party or receiver",
    "gateway": "the gateway",
}


@dataclass(frozen=True)
class From:
    """AppHdr Fr, resolved through the directory."""

    bic: str
    sends_for: tuple[str, ...]  # BICs, 11 characters (the directory's, normalised at load)
    signed: bool  # the message carries a signature (verified by then: the signer is Fr)


def sender_of(msg: BusinessMessage, directory: Directory) -> From | None:
    """Who the message says sent it: AppHdr Fr, by BIC and, if given, member id (they must
    name the same party). None for a bare Document (no AppHdr)."""
    if msg.header is None:
        return None
    fin = one(msg.header_map, "Fr", "FIId", "FinInstnId")  # once: this runs per message
    bic = (txt(fin, "BICFI") or "").strip()
    party = directory.signatory(bic) if bic else None
    if party is None:
        raise refusal(
            msg,
            "RC01",
            f"AppHdr Fr {bic or '(no BIC)'} is not a participant, depository or system of "
            "the connect scheme",
        )
    member = (txt(fin, "ClrSysMmbId", "MmbId") or "").strip()
    if member:
        # Beside the BIC, a member id must name the same participant, as for any scheme agent
        # (a depository or a system has none).
        system = (txt(fin, "ClrSysMmbId", "ClrSysId", "Cd") or "").strip()
        scheme_participant(
            directory, system, bic, member, "AppHdr Fr", lambda c, d: refusal(msg, c, d)
        )
    return From(party.bic, party.sends_for, signed=msg.signed_by is not None)


def authorise(
    msg: BusinessMessage,
    role: Sender,
    entitled: str | None,
    sender: From | None,
    *,
    named: str | None = None,
) -> str:
    """The entitled party (11-character BIC), once `sender` is shown to send `msg` for it;
    the refusal is raised otherwise.

    `entitled`: that party's BIC (None: nobody is known to be); `named`: the party the message
    itself names in that role (its InstgAgt, Assgnr, account owner), resolved, if it names one.
    """
    what = msg.msg_def[:8]
    who = ROLES[role]
    if role == "gateway":
        raise refusal(msg, "AG01", f"a {what} is issued by {who} only")
    if entitled is None:
        # An answer to an original correlated before the gateway kept who received it.
        raise refusal(msg, "AG01", f"only {who} may send this {what}, and it is not known")
    entitled = bic11(entitled)
    if named is not None and bic11(named) != entitled:
        raise refusal(msg, "AG01", f"{named} may not send this {what}: only {entitled}, {who}, may")
    if sender is None:
        if named is not None:
            return entitled  # a bare Document speaks for the party it names (signatures off)
        raise refusal(msg, "AG01", f"no AppHdr Fr: only {entitled}, {who}, may send this {what}")
    if sender.bic == entitled or entitled in sender.sends_for:
        return entitled
    if sender.signed:
        raise errors.SignatureRefused(
            f"{sender.bic} may not sign for {entitled}, {who} of this {what} (sends_for)",
            ids=message_ids(msg),
            reason="DS19",
        )
    raise refusal(msg, "AG01", f"Fr {sender.bic} may not send for {entitled}, {who} of this {what}")
