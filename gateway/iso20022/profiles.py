"""The project's usage-guideline profiles (schemas/<dialect>/*.xsd), compiled once and reused.

Each dialect has a profile per message definition. A message in the gateway's own envelope is
validated in one call against an envelope schema generated here (AppHdr then Document of that
message); any other envelope, or a bare Document, part by part. One call matters: lxml builds a
temporary document for every validation of a non-root element, which costs as much as a third
of the parse (bench/validate.py). On failure the part-by-part path produces the precise error.
An XMLSchema object keeps its
error log on itself, so one `ProfileSet` must not validate from two threads at once: give each
worker thread its own set (loading all profiles of a dialect takes ~20 ms).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from gateway.iso20022 import errors
from gateway.iso20022.namespaces import ENVELOPE_NS, HEAD, ns
from gateway.iso20022.reader import BusinessMessage, recover_ids
from gateway.packaged import packaged
from gateway.sides import Side

_ENVELOPE_TAG = f"{{{ENVELOPE_NS}}}BizMsg"
_NS_CLUTTER = re.compile(r"\{urn:iso:std:iso:20022:tech:xsd:[a-z0-9.]+\}")


def default_schemas_dir() -> Path:
    """The profiles shipped with the package, unless CONNECT_GATEWAY_SCHEMAS points
    elsewhere."""
    override = os.environ.get("CONNECT_GATEWAY_SCHEMAS")
    if override:
        return Path(override)
    return packaged("schemas")


class ProfileSet:
    """All profiles of one dialect: the AppHdr's and those of `messages` (the document
    message definitions the gateway reads and writes, which its registry lists)."""

    def __init__(
        self, side: Side, messages: Iterable[str], schemas_dir: Path | None = None
    ) -> None:
        self.side = side
        self.messages = frozenset(messages)
        self.directory = (schemas_dir or default_schemas_dir()) / side
        # Schema documents are project files, but parse them as strictly as messages anyway.
        self._parser = etree.XMLParser(no_network=True, resolve_entities=False)
        # Compiled when first needed (a command translating one message compiles what it
        # needs, ~10 ms a schema); `compile_all` at a service's start, which also proves every
        # profile loads before any traffic.
        self._schemas: dict[str, etree.XMLSchema] = {}
        self._envelopes: dict[str, etree.XMLSchema] = {}
        self._limits: dict[str, dict[str, int]] = {}

    def compile_all(self) -> ProfileSet:
        self.schema(HEAD)
        for msg_def in sorted(self.messages):
            self.enveloped(msg_def)
        return self

    def _compile(self, msg_def: str) -> etree.XMLSchema:
        if msg_def != HEAD and msg_def not in self.messages:
            raise KeyError(msg_def)
        path = self.directory / f"{msg_def}.xsd"
        try:
            schema = etree.XMLSchema(etree.parse(str(path), self._parser))
        except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise RuntimeError(f"cannot load profile {path}: {exc}") from exc
        self._schemas[msg_def] = schema
        return schema

    def _envelope_schema(self, msg_def: str, parser: etree.XMLParser) -> etree.XMLSchema:
        head_xsd = (self.directory / f"{HEAD}.xsd").as_uri()
        doc_xsd = (self.directory / f"{msg_def}.xsd").as_uri()
        text = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
            targetNamespace="{ENVELOPE_NS}" elementFormDefault="qualified"
            xmlns:h="{ns(HEAD)}" xmlns:d="{ns(msg_def)}">
          <xs:import namespace="{ns(HEAD)}" schemaLocation="{head_xsd}"/>
          <xs:import namespace="{ns(msg_def)}" schemaLocation="{doc_xsd}"/>
          <xs:element name="BizMsg"><xs:complexType><xs:sequence>
            <xs:element ref="h:AppHdr"/><xs:element ref="d:Document"/>
          </xs:sequence></xs:complexType></xs:element>
        </xs:schema>"""
        return etree.XMLSchema(etree.fromstring(text.encode(), parser))

    def enveloped(self, msg_def: str) -> etree.XMLSchema:
        """The schema of `msg_def` in the gateway's envelope (AppHdr + Document)."""
        schema = self._envelopes.get(msg_def)
        if schema is None:
            if msg_def not in self.messages:
                raise KeyError(msg_def)
            self.schema(msg_def)  # its own file first: a broken profile names itself
            schema = self._envelopes[msg_def] = self._envelope_schema(msg_def, self._parser)
        return schema

    def schema(self, msg_def: str) -> etree.XMLSchema:
        return self._schemas.get(msg_def) or self._compile(msg_def)

    def validate(self, msg: BusinessMessage) -> None:
        """Raise `SchemaViolation` with the first error and its location, or return."""
        if msg.msg_def not in self.messages:
            raise errors.UnknownMessage(
                f"unsupported message definition {msg.msg_def}",
                ids=recover_ids(msg.raw, msg.document.getroottree().getroot(), self.messages),
            )
        if msg.header is not None:
            root = msg.header.getparent()
            if root is not None and root.tag == _ENVELOPE_TAG and root.getparent() is None:
                if self.enveloped(msg.msg_def).validate(root):
                    return
        if msg.header is not None:
            self._validate_part(msg, msg.header, HEAD)
        self._validate_part(msg, msg.document, msg.msg_def)

    def validate_built(self, msg_def: str, root: etree._Element) -> None:
        """Validate a message the gateway built (envelope element), without serialising it."""
        if self.enveloped(msg_def).validate(root):
            return
        header, document = root[0], root[1]
        msg = BusinessMessage(msg_def, document, header, b"")
        self._validate_part(msg, header, HEAD)
        self._validate_part(msg, document, msg_def)

    def text_limits(self, msg_def: str) -> dict[str, int]:
        """Element name -> the shortest maximum length the profile gives text elements of that
        name (what a rewritten text must fit wherever it is). Read from the profile file once."""
        limits = self._limits.get(msg_def)
        if limits is None:
            limits = self._limits[msg_def] = _text_limits(self.directory / f"{msg_def}.xsd")
        return limits

    def is_valid(self, msg_def: str, element: etree._Element) -> bool:
        return bool(self.schema(msg_def).validate(element))

    def _validate_part(self, msg: BusinessMessage, element: etree._Element, msg_def: str) -> None:
        schema = self.schema(msg_def)
        if schema.validate(element):
            return
        # The first error is the root cause; later ones are often its consequences.
        entry = next(iter(schema.error_log), None)  # type: ignore[call-overload]  # lxml-stubs
        message = _NS_CLUTTER.sub("", entry.message) if entry else "invalid"
        location = _locate(element, entry.line, entry.message) if entry else None
        # Where, by path (`location`), not by line: lines are the spelling's, not the message's.
        raise errors.SchemaViolation(
            f"{msg_def} does not conform to the {self.side} profile: {message}",
            location=location,
            ids=recover_ids(msg.raw, element.getroottree().getroot(), self.messages),
        )


_XS = "{http://www.w3.org/2001/XMLSchema}"


def _text_limits(path: Path) -> dict[str, int]:
    root = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    lengths: dict[str, int] = {}
    for simple in root.iterfind(f"{_XS}simpleType"):
        facet = simple.find(f"{_XS}restriction/{_XS}maxLength")
        if facet is not None:
            lengths[simple.get("name", "")] = int(facet.get("value", "0"))
    limits: dict[str, int] = {}
    for element in root.iter(f"{_XS}element"):
        name, length = element.get("name"), lengths.get(element.get("type", ""))
        if name and length is not None:
            limits[name] = min(length, limits.get(name, length))
    return limits


_ELEMENT_NAME = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")


def _locate(part: etree._Element, line: int, message: str) -> str | None:
    """'Document/FIToFICstmrCdtTrf/.../Cd' for the element an error names, found by its line.

    libxml2 reports positional paths (/*/*[2]/...) when validating a sub-element, which tell a
    partner nothing; the element's line and local name identify it.
    """
    named = _ELEMENT_NAME.search(message)
    name = named.group(1) if named else None
    match = None
    for el in part.iter():
        if isinstance(el.tag, str) and el.sourceline == line:  # type: ignore[comparison-overlap]
            if name is None or etree.QName(el).localname == name:
                match = el
    if match is None:
        return None
    steps = []
    node: etree._Element | None = match
    while node is not None:
        steps.append(etree.QName(node).localname)
        if node is part:
            break
        node = node.getparent()
    return "/".join(reversed(steps))
