"""Two small tools the codecs are written with.

`to_map` turns a validated element into nested dicts in one pass: {local name: [child, ...]},
leaves as text (or `Leaf` when they carry attributes), SplmtryData envelopes kept as elements.
Lookups are then dict operations instead of ElementPath searches, which cost microseconds each.

`render` builds a document from a nested spec that reads like the message:
    ("GrpHdr", [("MsgId", p.msg_id), ("NbOfTxs", "1")])
A None value, or a container whose children are all None, is left out; so optional elements
need no `if`s around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from lxml import etree

from gateway.iso20022 import errors


@dataclass(frozen=True)
class Leaf:
    text: str
    attrib: dict[str, str]


class Raw(str):
    """XML text already serialised (and escaped) by the gateway, rendered as is."""


Node = dict[str, list["Node"]] | str | Leaf | etree._Element


_DESCENDANTS = etree.XPath("descendant::*")
_LOCAL_NAMES: dict[str, str] = {}  # '{ns}Local' -> 'Local'; a few hundred tags at most


def to_map(element: etree._Element) -> dict[str, list[Node]]:
    # One XPath call lists every element in document order, from C; walking children from
    # Python instead (recursion, one iterator per element) costs 1.7 times as much.
    top: dict[str, list[Node]] = {}
    maps: dict[etree._Element | None, dict[str, list[Node]]] = {element: top}
    locals_get = _LOCAL_NAMES.get
    for child in cast(list[etree._Element], _DESCENDANTS(element)):
        parent = maps.get(child.getparent())
        if parent is None:
            continue  # inside a SplmtryData envelope, which is kept whole
        tag = child.tag
        local = locals_get(tag)
        if local is None:
            local = _LOCAL_NAMES[tag] = tag[tag.find("}") + 1 :]
        value: Node
        if local == "Envlp":
            value = child
        elif len(child):
            value = maps[child] = {}
        else:
            names = child.keys()  # cheaper than .attrib, which builds a proxy
            if names:
                value = Leaf((child.text or "").strip(), {str(k): str(child.get(k)) for k in names})
            else:
                # As is: xs:string preserves white space, so stripping would change the data.
                value = child.text or ""
        found = parent.get(local)
        if found is None:
            parent[local] = [value]
        else:
            found.append(value)
    return top


Map = dict[str, list[Node]]


# one/txt/leaf run ~90 times a message: plain loops and exact class tests (the dict view holds
# only dict, str, Leaf and elements) take half the time of the generic versions.
def one(m: Map | None, *path: str) -> Map | None:
    for step in path:
        if m is None:
            return None
        items = m.get(step)
        if not items:
            return None
        nxt = items[0]
        m = nxt if nxt.__class__ is dict else None
    return m


def _at(m: Map | None, path: tuple[str, ...]) -> Node | None:
    node: Node | None = m
    for step in path:
        if node.__class__ is not dict:
            return None
        items = node.get(step)
        if not items:
            return None
        node = items[0]
    return node


def txt(m: Map | None, *path: str) -> str | None:
    value = _at(m, path)
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[return-value]
    if cls is Leaf:
        return value.text  # type: ignore[union-attr]
    if value is None:
        return None
    if cls is dict or isinstance(value, etree._Element):
        # A value's path names an element with children: refused (FF01), never read as empty.
        where = "/".join(path)
        raise errors.SchemaViolation(f"{where} must hold a value, not elements", location=where)
    return value if isinstance(value, str) else None


def leaf(m: Map | None, *path: str) -> Leaf | None:
    value = _at(m, path)
    return value if value.__class__ is Leaf else None


def many(m: Map | None, name: str) -> list[Node]:
    return list(m.get(name, [])) if m is not None else []


Spec = Sequence[tuple[str, object]]


def render(parent: etree._Element, spec: Spec, namespace: str) -> None:
    for tag, value in spec:
        if value is None:
            continue
        qname = f"{{{namespace}}}{tag}"
        if isinstance(value, Raw):
            # Rendered text in the element's namespace (`render_text` made it): parsed back.
            holder = etree.SubElement(parent, qname)
            holder.extend(etree.fromstring(f'<r xmlns="{namespace}">{value}</r>'))
        elif isinstance(value, str):
            etree.SubElement(parent, qname).text = value
        elif isinstance(value, Leaf):
            etree.SubElement(parent, qname, value.attrib).text = value.text
        elif isinstance(value, etree._Element):
            holder = etree.SubElement(parent, qname)
            holder.append(value)
        else:
            child = etree.SubElement(parent, qname)
            render(child, value, namespace)  # type: ignore[arg-type]
            if not len(child):
                parent.remove(child)


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)


def escape_text(value: str) -> str:
    # Most values need no escaping, and the membership tests cost a tenth of a translate().
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        return value.translate(_TEXT_ESCAPES)
    return value


def render_text(spec: Spec, out: list[str]) -> None:
    """`render`, but appending XML text to `out`, escaped exactly as lxml serialises.

    Building text and parsing it once (to validate) costs about half of building the same tree
    element by element from Python.
    """
    append = out.append
    for tag, value in spec:
        if value is None:
            continue
        cls = value.__class__
        if cls is str:
            append(f"<{tag}>{escape_text(value)}</{tag}>")  # type: ignore[arg-type]
        elif cls is Leaf:
            attrs = "".join(
                f' {k}="{v.translate(_ATTR_ESCAPES)}"'
                for k, v in value.attrib.items()  # type: ignore[attr-defined]
            )
            append(f"<{tag}{attrs}>{escape_text(value.text)}</{tag}>")  # type: ignore[attr-defined]
        elif cls is Raw:
            append(f"<{tag}>{value}</{tag}>")
        elif isinstance(value, etree._Element):
            append(f"<{tag}>{etree.tostring(value, encoding='unicode')}</{tag}>")
        elif isinstance(value, str):  # a str subclass
            append(f"<{tag}>{escape_text(value)}</{tag}>")
        else:
            mark = len(out)
            append(f"<{tag}>")
            render_text(value, out)  # type: ignore[arg-type]
            if len(out) == mark + 1:
                out.pop()  # a container with nothing in it is left out
            else:
                append(f"</{tag}>")


def clone(element: etree._Element) -> etree._Element:
    """A deep copy of `element` (an lxml element's own copy is deep; `copy.deepcopy` adds
    Python's memo bookkeeping, a third of the cost for the small parts the gateway copies)."""
    return cast(etree._Element, element.__copy__())  # type: ignore[attr-defined]  # lxml-stubs
