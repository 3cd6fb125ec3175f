"""Reading a business message from untrusted bytes.

The bytes come from partners over Kafka, so the reader assumes they are hostile:
- the size limit is checked before anything is parsed;
- only UTF-8 is accepted (ISO 20022 messages are UTF-8), which also makes the byte scan for
  forbidden markup below sound;
- DOCTYPE, ENTITY and processing instructions in the prolog are refused outright before
  parsing: they have no place in an ISO 20022 message and are how XXE, entity bombs and external
  fetches get in;
- the parser itself is configured never to load a DTD, resolve an entity, touch the network or
  lift libxml2's size safeguards (huge_tree stays off), as a second line of defence.
Every failure is a typed `MessageError`; nothing else escapes.

One message, one meaning (docs/security.md): the tree every later step reads (keys, checks,
bookings, outputs) is the one its signature covers. A comment, a processing instruction, a
CDATA section or a character reference can split a value, or the white space between
elements, into pieces that a reader of `.text` sees apart, while exclusive C14N (what the
signature digests; comments left out) joins them. So a body that holds any of them is parsed
without comments and PIs, CDATA and references resolved into the text around them, and the
white space between elements dropped as for any message: the same tree as the plain spelling.
Canonicalising rather than refusing keeps a genuine message with a comment flowing (some
partners' tools annotate what they generate), and the rule is the same with signatures on or
off. A PI added after signing still fails the signature: C14N keeps PIs.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property

from lxml import etree

from gateway.iso20022 import errors
from gateway.iso20022.namespaces import HEAD, msg_def_of, ns
from gateway.iso20022.tree import Leaf, Map, one, to_map, txt

DEFAULT_MAX_BYTES = 2 * 1024 * 1024

_XML_DECL = re.compile(rb"<\?xml\s[^>]{0,200}?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")

_MSG_DEF_IDR = f"{{{ns(HEAD)}}}MsgDefIdr"
_local = threading.local()


def hardened_parser(
    *, remove_pis: bool = False, remove_comments: bool = False, remove_blank_text: bool = False
) -> etree.XMLParser:
    """A parser that never loads a DTD, resolves an entity, touches the network or lifts
    libxml2's size safeguards (CDATA delivered as text): every parser of untrusted bytes."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
        strip_cdata=True,
        remove_pis=remove_pis,
        remove_comments=remove_comments,
        remove_blank_text=remove_blank_text,
    )


# lxml parsers are not safe to share between threads: one of each per thread.
_PARSERS = {
    # Indentation between elements is not content (ISO 20022 has no mixed content): dropped
    # while parsing, in C, so nothing after it walks or carries it.
    "plain": {"remove_pis": True, "remove_blank_text": True},
    # For a body with comments, PIs, CDATA or character references: white space kept
    # (libxml2 decides what is blank by its neighbours, a comment among them, and keeps blanks
    # written as references), comments and PIs never built, CDATA delivered as text, so the
    # pieces of a value join into one text node.
    "canonical": {"remove_pis": True, "remove_comments": True},
    # For a body that may be signed: as it was signed (white space and PIs kept: the digest
    # covers them; comments left out, as the digest's C14N leaves them out), for the
    # signature check; canonicalised after it (`read_message`).
    "signed": {"remove_comments": True},
}


def _parser(kind: str = "plain") -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, kind, None)
    if parser is None:
        parser = hardened_parser(**_PARSERS[kind])
        setattr(_local, kind, parser)
    return parser


@dataclass(frozen=True, eq=False)
class BusinessMessage:
    """A well-formed ISO 20022 business message: optional AppHdr and a Document."""

    msg_def: str
    document: etree._Element
    header: etree._Element | None
    raw: bytes
    signed_by: object | None = None  # what the signature check found (`read_message`)

    @property
    def namespace(self) -> str:
        return ns(self.msg_def)

    # One pass over each part builds a dict view that keys, header and codecs share; walking
    # lxml elements from Python costs a proxy object per node visited, every time.
    @cached_property
    def header_map(self) -> Map:
        return to_map(self.header) if self.header is not None else {}

    @cached_property
    def doc_map(self) -> Map:
        return to_map(self.document)

    @cached_property
    def ids(self) -> errors.RecoveredIds:
        """Its identifiers, for whatever answers or refuses it (`message_ids`)."""
        return _ids_from_maps(self)

    def header_text(self, path: str) -> str | None:
        """Text at a path below AppHdr, e.g. 'Fr/FIId/FinInstnId/BICFI'."""
        value = txt(self.header_map, *path.split("/"))
        return value.strip() if value is not None else None

    def doc_text(self, path: str) -> str | None:
        """Text at a path below Document, e.g. 'FIToFICstmrCdtTrf/GrpHdr/MsgId'."""
        value = txt(self.doc_map, *path.split("/"))
        return value.strip() if value is not None else None


def payload_ref(data: bytes) -> str:
    """A stable 35-character reference to any payload, readable or not."""
    return "SHA256:" + hashlib.sha256(data).hexdigest()[:28].upper()


def read_message(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check_signed: Callable[[etree._Element], object | None] | None = None,
    known: Collection[str] | None = None,
) -> BusinessMessage:
    """Parse and structurally check one message. Raises a `MessageError` subclass on any fault.

    `check_signed`: the signature check (gateway/signatures.py), given the tree as it was
    signed, before it is canonicalised: a message is parsed once. What it returns is the
    message's `signed_by` (None: no signature); what it raises is raised, with the ids of the
    message read. `known`: the message definitions read (None: any); another is refused
    (UnknownMessage), and a reject names only a known one."""
    if len(data) > max_bytes:
        raise errors.MessageTooLarge(
            f"message is {len(data)} bytes, the limit is {max_bytes}", ids=_ref_only(data)
        )
    if not data or data.isspace():
        raise errors.EmptyMessage("message is empty", ids=_ref_only(data))
    body = _check_encoding_and_markup(data)
    # No "Signature" anywhere: nothing can be signed, and the fast plain reading will do.
    as_signed = check_signed is not None and b"Signature" in data
    try:
        if as_signed:
            root = etree.fromstring(data, _parser("signed"))
        elif has_markup(data, body) or b"&#" in data:
            # A comment, CDATA section, PI or character reference in the body (a DOCTYPE there
            # is a syntax error): its canonical reading (module docstring).
            root = etree.fromstring(data, _parser("canonical"))
            _drop_blanks(root)
        else:
            root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise errors.NotWellFormed(
            f"not well-formed XML: {exc.msg}",
            location=f"line {exc.lineno}, column {exc.offset}",
            ids=_ref_only(data),
        ) from None
    except (ValueError, etree.LxmlError) as exc:
        raise errors.NotWellFormed(f"unreadable: {exc}", ids=_ref_only(data)) from None
    if getattr(root.getroottree().docinfo, "doctype", ""):
        # Unreachable past the byte scan; kept so a scan regression cannot open XXE.
        raise errors.ForbiddenMarkup("DOCTYPE is not allowed", ids=recover_ids(data, root, known))
    if check_signed is None or not as_signed:
        return _structure(data, root, known)
    refused: errors.MessageError | None = None
    signed_by = None
    try:
        signed_by = check_signed(root)
    except errors.MessageError as exc:
        refused = exc
    # Then the one reading everything else sees (module docstring): the PIs the digest
    # covered joined into the text around them, the white space between elements dropped.
    etree.strip_tags(root, etree.PI)
    _drop_blanks(root)
    try:
        msg = _structure(data, root, known, signed_by)
    except errors.MessageError:
        if refused is None:
            raise
        # A refused signature is the answer, whatever else is wrong with the message.
        refused.ids = refused.ids or recover_ids(data, root, known)
        raise refused from None
    if refused is not None:
        refused.ids = refused.ids or message_ids(msg)
        raise refused
    return msg


def has_markup(data: bytes, start: int) -> bool:
    """A comment, CDATA section, PI or declaration (`<!`, `<?`) at or after `start`. Searched
    by the rare second byte (memchr), not the pair: a pair search crawls through every `<`,
    which costs more than the rest of this check per message."""
    for mark in (b"!", b"?"):
        at = data.find(mark, start)
        while at >= 0:
            if at > start and data[at - 1] == 0x3C:  # "<"
                return True
            at = data.find(mark, at + 1)
    return False


_XML_SPACE = " \t\r\n"  # what XML calls white space (not every Unicode space)


def _drop_blanks(root: etree._Element) -> None:
    """ISO 20022 has no mixed content: white space beside elements is not data. One pass over
    the elements (an XPath over the text nodes costs four times as much): the blank text
    before an element's first child, and the blank text after each element, in its parent."""
    for el in root.iter(tag=etree.Element):
        if len(el):  # before .text, which builds a string
            text = el.text
            if text is not None and not text.strip(_XML_SPACE):
                el.text = None
        tail = el.tail
        if tail is not None and not tail.strip(_XML_SPACE):
            el.tail = None


def _ref_only(data: bytes) -> errors.RecoveredIds:
    return errors.RecoveredIds(payload_ref(data))


def _check_encoding_and_markup(data: bytes) -> int:
    """Refuse what the parser should never see: other encodings, and markup in the prolog.
    Returns where the root element starts."""
    if data.startswith(_WIDE_BOMS):
        raise errors.UnsupportedEncoding(
            "only UTF-8 is accepted (UTF-16/32 byte order mark)", ids=_ref_only(data)
        )
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    while start < len(data) and data[start] in b" \t\r\n":
        start += 1
    decl = _XML_DECL.match(data, start)
    if decl:
        enc = _ENCODING.search(decl.group(0))
        if enc and enc.group(1).lower() not in (b"utf-8", b"utf8"):
            raise errors.UnsupportedEncoding(
                f"only UTF-8 is accepted, the declaration says {enc.group(1).decode('ascii')}",
                ids=_ref_only(data),
            )
    return _check_prolog(data, decl.end() if decl else start)


def _check_prolog(data: bytes, pos: int) -> int:
    """Refuse declarations and processing instructions before the root element.

    A DOCTYPE (and so any ENTITY) is only legal in the prolog: anywhere later it is a syntax
    error the parser reports. So walking the prolog, which is a few bytes, is enough; the body
    is not scanned for declarations. Comments, CDATA and processing instructions in the body
    are read through the canonical form (module docstring).
    """
    while True:
        lt = data.find(b"<", pos)
        if lt < 0:
            return len(data)  # no element at all: the parser will say so
        marker = data[lt + 1 : lt + 2]
        if marker == b"!" and data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 4)
            if end < 0:
                return lt  # unterminated comment: the parser will say so
            pos = end + 3
            continue
        if marker == b"!":
            word = data[lt + 2 : lt + 10].split(maxsplit=1)
            name = word[0].decode("ascii", "replace").upper() if word else ""
            raise errors.ForbiddenMarkup(
                f"<!{name} is not allowed in a business message", ids=_ref_only(data)
            )
        if marker == b"?":
            raise errors.ForbiddenMarkup(
                "processing instructions are not allowed", ids=_ref_only(data)
            )
        return lt  # the root element starts here


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _split(tag: str) -> tuple[str | None, str | None, str]:
    """'{ns}Local' -> (message definition or None, namespace, local name)."""
    if tag[:1] == "{":
        namespace, _, local = tag[1:].partition("}")
        return msg_def_of(namespace), namespace, local
    return None, None, tag


def _structure(
    data: bytes,
    root: etree._Element,
    known: Collection[str] | None,
    signed_by: object | None = None,
) -> BusinessMessage:
    root_def, _, root_local = _split(root.tag)
    header: etree._Element | None = None
    if root_def is not None:
        if root_def == HEAD:
            raise errors.UnknownMessage(
                "an AppHdr alone is not a business message", ids=recover_ids(data, root, known)
            )
        if root_local != "Document":
            raise errors.UnknownMessage(
                f"root element {root_local} in {root_def}: expected Document",
                ids=recover_ids(data, root, known),
            )
        document = root
    else:
        children = _elements(root)
        names = [_split(c.tag) for c in children]
        if (
            len(children) != 2
            or names[0][0] is None
            or names[0][2] != "AppHdr"
            or names[1][0] is None
            or names[1][2] != "Document"
        ):
            found = ", ".join(f"{n[2]}({n[0] or 'no ISO namespace'})" for n in names) or "none"
            raise errors.UnknownMessage(
                f"envelope {root_local} must hold AppHdr then Document; found: {found}",
                ids=recover_ids(data, root, known),
            )
        if names[0][0] != HEAD:
            raise errors.UnknownMessage(
                f"unsupported header version {names[0][0]}: expected {HEAD}",
                ids=recover_ids(data, root, known),
            )
        header, document = children
    doc_def = _split(document.tag)[0]
    assert doc_def is not None
    if known is not None and doc_def not in known:
        raise errors.UnknownMessage(
            f"unsupported message definition {doc_def}", ids=recover_ids(data, root, known)
        )
    if header is not None:
        # A direct loop: findtext() goes through ElementPath, which costs more than the rest of
        # the structural checks together on this hot path.
        declared = next((c.text or "" for c in header if c.tag == _MSG_DEF_IDR), None)
        if declared is not None and declared.strip() != doc_def:
            raise errors.HeaderMismatch(
                f"AppHdr MsgDefIdr is {declared.strip()} but the Document is {doc_def}",
                location="AppHdr/MsgDefIdr",
                ids=recover_ids(data, root, known),
            )
    return BusinessMessage(doc_def, document, header, data, signed_by)


# Where recover_ids looks (first match in document order wins) and what a value must look like
# to be copied into the reject: a recovered value is only useful if the reject that carries it
# stays valid. Names, not namespaces: the message failed, so its namespaces may be wrong too.
# Each field is (parent's local name, own local name); the sender's BIC is any BICFI below
# AppHdr/Fr.
_MAX35 = re.compile(r"\S(.{0,33}\S)?")
_BIC_RE = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")
_UUID4 = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+\-][0-9]{2}:[0-9]{2})"
)
_RECOVER: dict[tuple[str, str], tuple[str, re.Pattern[str]]] = {
    ("AppHdr", "BizMsgIdr"): ("biz_msg_idr", _MAX35),
    ("GrpHdr", "MsgId"): ("msg_id", _MAX35),
    ("GrpHdr", "CreDtTm"): ("cre_dt_tm", _DATETIME),
    ("PmtId", "UETR"): ("uetr", _UUID4),
    ("PmtId", "EndToEndId"): ("end_to_end_id", _MAX35),
    ("PmtId", "InstrId"): ("instr_id", _MAX35),
    ("PmtId", "TxId"): ("tx_id", _MAX35),
}


def _local_name(tag: str) -> str:
    return tag[tag.find("}") + 1 :]


def _below_header_fr(el: etree._Element) -> bool:
    """Whether `el` is below an Fr that is a child of an AppHdr."""
    parent = el.getparent()
    while parent is not None:
        grand = parent.getparent()
        if (
            _local_name(parent.tag) == "Fr"
            and grand is not None
            and _local_name(grand.tag) == "AppHdr"
        ):
            return True
        parent = grand
    return False


def recover_ids(
    data: bytes, root: etree._Element | None, known: Collection[str] | None = None
) -> errors.RecoveredIds:
    """Best effort: the identifiers a reject should carry, each the first in document order
    whose value has the right shape.

    A message that was read is referred to by its canonical form's hash, so that every
    spelling of it gets the same reject; unreadable bytes by their own. One walk over the
    elements: a message refused after it was read (a clash, a business refusal) pays for
    this once, on its way out."""
    if root is None:
        return errors.RecoveredIds(payload_ref(data))
    reference = payload_ref(etree.tostring(root, method="c14n", exclusive=True))
    found: dict[str, str] = {}
    tried: set[str] = set()  # fields whose first match was seen (shaped or not)
    msg_def: str | None = None
    for el in root.iter(tag=etree.Element):
        tag = el.tag
        local = _local_name(tag)
        if local == "Document" and msg_def is None:
            msg_def = msg_def_of(etree.QName(el).namespace)  # the first in an ISO namespace
        parent = el.getparent()
        if parent is None:
            continue
        if local == "BICFI":
            if "sender_bic" not in tried and _below_header_fr(el):
                tried.add("sender_bic")
                _keep(found, "sender_bic", el, _BIC_RE)
            continue
        wanted = _RECOVER.get((_local_name(parent.tag), local))
        if wanted is not None and wanted[0] not in tried:
            tried.add(wanted[0])
            _keep(found, wanted[0], el, wanted[1])
    if msg_def is None:  # no Document in an ISO namespace: the root's own, if it has one
        msg_def = msg_def_of(etree.QName(root).namespace)
    if msg_def and (known is None or msg_def in known):  # a reject names only a known one
        found["msg_def"] = msg_def
    return errors.RecoveredIds(reference, **found)


def _keep(found: dict[str, str], name: str, el: etree._Element, shape: re.Pattern[str]) -> None:
    text = (el.text or "").strip()
    if shape.fullmatch(text):
        found[name] = text


def message_ids(msg: BusinessMessage) -> errors.RecoveredIds:
    """The identifiers of a message that was read, for what answers it: what `recover_ids`
    finds, looked up in the dict views the message was read into (document order within
    each parent) instead of walking its elements again. Once per message."""
    return msg.ids


def _ids_from_maps(msg: BusinessMessage) -> errors.RecoveredIds:
    root = msg.document.getroottree().getroot()
    reference = payload_ref(etree.tostring(root, method="c14n", exclusive=True))
    found: dict[str, str] = {"msg_def": msg.msg_def}
    fr = one(msg.header_map, "Fr")
    if fr is not None:
        bic = _first_leaf(fr, "BICFI")
        if bic is not None and _BIC_RE.fullmatch(bic.strip()):
            found["sender_bic"] = bic.strip()
    pending = dict(_RECOVER)
    _search(msg.header_map, "AppHdr", pending, found)
    _search(msg.doc_map, "Document", pending, found)
    return errors.RecoveredIds(reference, **found)


def _first_leaf(m: Map, name: str) -> str | None:
    """The text of the first `name` below `m`, depth first in document order."""
    for local, children in m.items():
        for child in children:
            if local == name and isinstance(child, str):
                return child
            if isinstance(child, dict):
                found = _first_leaf(child, name)
                if found is not None:
                    return found
    return None


def _search(
    m: Map,
    parent: str,
    pending: dict[tuple[str, str], tuple[str, re.Pattern[str]]],
    found: dict[str, str],
) -> None:
    for local, children in m.items():
        if not pending:
            return
        for child in children:
            wanted = pending.pop((parent, local), None)
            if wanted is not None and isinstance(child, str | Leaf):
                text = (child if isinstance(child, str) else child.text).strip()
                if wanted[1].fullmatch(text):
                    found[wanted[0]] = text
            if isinstance(child, dict):
                _search(child, local, pending, found)


def refusal(msg: BusinessMessage, reason: str, detail: str) -> errors.Refusal:
    """A business refusal of a readable message, carrying its identifiers for the pacs.002."""
    return errors.Refusal(detail, ids=message_ids(msg), reason=reason)
