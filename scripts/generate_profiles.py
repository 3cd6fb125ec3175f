"""Write the market-practice profiles from their description and the official schemas.

    python scripts/generate_profiles.py [--official DIR] [--out DIR] [--check]

Reads `schemas/profiles.toml` (what each dialect restricts, and nothing else) and, for each
message it lists, the official ISO 20022 schema (`../shared/iso20022/xsd/<id>.xsd` by default).
Writes `schemas/<dialect>/<id>.xsd`: the official schema's types, every one of them, with the
described restrictions applied and the profile's own types added. The output is committed
beside this script; `--check` only compares (exit 1 and the stale files named if they differ),
which is what `tests/test_profiles.py` runs.

Each change is a restriction: an element made mandatory or single, a type replaced by one
built from the official type with fewer choices or narrower values, a pattern added to text.
`tests/test_profiles.py` proves it for every profile against the official schema.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tomllib
from pathlib import Path
from typing import Any

from lxml import etree

XS_NS = "http://www.w3.org/2001/XMLSchema"
XS = f"{{{XS_NS}}}"
ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION = ROOT / "schemas" / "profiles.toml"
OFFICIAL = ROOT.parent / "shared" / "iso20022" / "xsd"


def _xs(tag: str, parent: etree._Element | None = None, **attrib: str) -> etree._Element:
    if parent is None:
        return etree.Element(XS + tag, attrib, nsmap={"xs": XS_NS})
    return etree.SubElement(parent, XS + tag, attrib)


def _named(schema: etree._Element) -> dict[str, etree._Element]:
    return {el.get("name", ""): el for el in schema if el.get("name")}


def _element(types: dict[str, etree._Element], path: str) -> etree._Element:
    """The local element `<type>/<element>` of the official schema."""
    type_name, _, name = path.partition("/")
    owner = types.get(type_name)
    if owner is None:
        raise SystemExit(f"profiles.toml: {path}: no type {type_name} in the official schema")
    found = [el for el in owner.iter(XS + "element") if el.get("name") == name]
    if len(found) != 1:
        raise SystemExit(f"profiles.toml: {path}: {len(found)} elements named {name}")
    return found[0]


def _scheme_types(schema: etree._Element, scheme: dict[str, Any], dialect: dict[str, Any]) -> None:
    """The types the description parameterises (member id, clearing system, amount), added to
    `schema`."""
    member = _xs("simpleType", schema, name="SchemeMemberId")
    _xs("pattern", _xs("restriction", member, base="xs:string"), value=dialect["member_id"])
    code = _xs("simpleType", schema, name="SchemeClearingSystemCode")
    _xs("enumeration", _xs("restriction", code, base="xs:string"), value=dialect["clearing_system"])
    system = _xs("complexType", schema, name="SchemeClearingSystem")
    _xs("element", _xs("choice", system), name="Cd", type="SchemeClearingSystemCode")
    currency = _xs("simpleType", schema, name="SchemeCurrencyCode")
    restriction = _xs("restriction", currency, base="xs:string")
    for ccy in scheme["currencies"]:
        _xs("enumeration", restriction, value=ccy)
    value = _xs("simpleType", schema, name="SchemeAmount_SimpleType")
    restriction = _xs("restriction", value, base="xs:decimal")
    _xs("fractionDigits", restriction, value=str(scheme["amount_fraction_digits"]))
    _xs("totalDigits", restriction, value=str(scheme["amount_total_digits"]))
    _xs("minInclusive", restriction, value=scheme["amount_min"])
    amount = _xs("complexType", schema, name="SchemeAmount")
    extension = _xs("extension", _xs("simpleContent", amount), base="SchemeAmount_SimpleType")
    _xs("attribute", extension, name="Ccy", type="SchemeCurrencyCode", use="required")
    one = _xs("simpleType", schema, name="OneTransaction")
    _xs("pattern", _xs("restriction", one, base="xs:string"), value="1")


def _derive(types: dict[str, etree._Element], name: str, spec: dict[str, Any]) -> etree._Element:
    base = types.get(spec["from"])
    if base is None:
        raise SystemExit(f"profiles.toml: derived.{name}: no official type {spec['from']}")
    derived = copy.deepcopy(base)
    derived.set("name", name)
    elements = {el.get("name"): el for el in derived.iter(XS + "element")}
    for child, new_type in spec.get("retype", {}).items():
        elements[child].set("type", new_type)
    for child in spec.get("required", []):
        if "minOccurs" in elements[child].attrib:
            del elements[child].attrib["minOccurs"]
    if "only" in spec:
        for child_name, el in elements.items():
            if child_name not in spec["only"]:
                parent = el.getparent()
                assert parent is not None and parent.tag == XS + "choice", (
                    f"derived.{name}: 'only' removes branches of a choice, {child_name} is not one"
                )
                parent.remove(el)
    return derived


def generate(description: dict[str, Any], official: Path, dialect_name: str, msg_def: str) -> bytes:
    dialect = description["dialect"][dialect_name]
    scheme = description["scheme"]
    rules = description["message"][msg_def]
    parser = etree.XMLParser(remove_blank_text=True, remove_comments=True, no_network=True)
    schema = etree.parse(str(official / f"{msg_def}.xsd"), parser).getroot()
    types = _named(schema)

    for path in rules.get("single", []):
        _element(types, path).set("maxOccurs", "1")
    for path in rules.get("required", []):
        _element(types, path).set("minOccurs", "1")
    for path, new_type in rules.get("retype", {}).items():
        _element(types, path).set("type", new_type)

    text = dialect.get("text_pattern")
    for simple in schema.iterfind(XS + "simpleType"):
        restriction = simple.find(XS + "restriction")
        if restriction is None:
            continue
        if simple.get("name") == "ISODateTime":
            _xs("pattern", restriction, value=scheme["datetime_pattern"])
        facets = {etree.QName(f).localname for f in restriction}
        # Free text: strings bounded by length only (codes and identifiers have patterns or
        # enumerations, and are Latin already).
        if text and restriction.get("base") == "xs:string" and "maxLength" in facets:
            if not facets & {"pattern", "enumeration"}:
                _xs("pattern", restriction, value=text)

    _scheme_types(schema, scheme, dialect)
    for name in rules.get("derive", []):
        schema.append(_derive(types, name, description["derived"][name]))

    etree.indent(schema, space="  ")
    notice = etree.Comment(
        f" {dialect_name} profile of {msg_def}: generated by scripts/generate_profiles.py from "
        f"schemas/profiles.toml and the official {msg_def}.xsd. Do not edit: edit the "
        "description and generate. "
    )
    body = etree.tostring(schema, encoding="unicode")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + etree.tostring(notice, encoding="unicode")
        + "\n"
        + body
        + "\n"
    ).encode("utf-8")


def outputs(official: Path) -> dict[str, bytes]:
    """Relative path under schemas/ -> the profile's bytes."""
    with open(DESCRIPTION, "rb") as fh:
        description = tomllib.load(fh)
    return {
        f"{dialect}/{msg_def}.xsd": generate(description, official, dialect, msg_def)
        for dialect in description["dialect"]
        for msg_def in description["message"]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, default=OFFICIAL, help="official XSD folder")
    parser.add_argument("--out", type=Path, default=ROOT / "schemas", help="profiles folder")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    if not args.official.is_dir():
        print(f"no official schemas in {args.official}", file=sys.stderr)
        return 2
    stale = []
    for relative, data in outputs(args.official).items():
        path = args.out / relative
        if path.exists() and path.read_bytes() == data:
            continue
        stale.append(relative)
        if not args.check:
            path.write_bytes(data)
    if args.check and stale:
        print("stale profiles (run scripts/generate_profiles.py):", *stale, file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {len(stale)} profile(s)" + (f": {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
