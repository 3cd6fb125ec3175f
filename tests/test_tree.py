"""The dict view and the two renderers the codecs are written with."""

from __future__ import annotations

from lxml import etree

from gateway.iso20022.tree import Leaf, Raw, leaf, many, one, render, render_text, to_map, txt

NS = "urn:example:tree"


def test_the_dict_view_keeps_order_repeats_attributes_white_space_and_envelopes() -> None:
    doc = etree.fromstring(
        f'<D xmlns="{NS}"><!-- a comment --><A><B>one</B><B> two </B><Amt Ccy="CNY">0.01</Amt>'
        f'</A><Envlp><X xmlns="urn:other"><Y>kept whole</Y></X></Envlp><E/></D>'
    )
    m = to_map(doc)
    a = one(m, "A")
    assert a is not None
    assert many(a, "B") == ["one", " two "]  # repeats in order; xs:string white space as is
    assert txt(m, "A", "B") == "one"
    assert leaf(m, "A", "Amt") == Leaf("0.01", {"Ccy": "CNY"})
    assert txt(m, "A", "Amt") == "0.01"
    envelope = m["Envlp"][0]
    assert isinstance(envelope, etree._Element)  # not walked into
    assert "Y" not in m and txt(m, "E") == ""
    assert txt(m, "A", "B", "C") is None and one(m, "A", "B") is None and txt(m, "Z") is None
    assert txt(None, "A") is None and leaf(m, "A", "B") is None


def test_text_and_element_rendering_agree_including_raw_fragments() -> None:
    inner: list[str] = []
    render_text([("C", "x & <y>"), ("D", "2")], inner)
    spec = [
        ("A", [("B", "a\r&b"), ("Empty", [("Gone", None)])]),
        ("Amt", Leaf("1.00", {"Ccy": 'C"N'})),
        ("Frag", Raw("".join(inner))),
    ]
    out = [f'<R xmlns="{NS}">']
    render_text(spec, out)
    out.append("</R>")
    as_text = "".join(out)
    root = etree.Element(f"{{{NS}}}R", nsmap={None: NS})  # type: ignore[dict-item]
    render(root, spec, NS)
    assert etree.tostring(root, encoding="unicode") == as_text
    assert "<Empty>" not in as_text and "x &amp; &lt;y&gt;" in as_text and "&#13;" in as_text
