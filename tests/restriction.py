"""Is a profile XSD a restriction of the official ISO 20022 XSD?

Walks both content models side by side with xmlschema (schema introspection; never on the hot
path) and reports every place where a message valid against the profile could be invalid
against the official schema:
- an element the official type does not have, or in another order;
- an occurrence range the official one does not contain, or a required official element that
  the profile makes optional or leaves out;
- two elements the profile allows together where the official schema has a choice;
- a simple value the official type refuses: enumerations are checked value by value, patterns
  by generating values from the profile's pattern (hypothesis) and validating them against the
  official type, lengths and digits by comparing facets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xmlschema.validators import XsdAnyElement, XsdElement, XsdGroup

UNBOUNDED = 10**9


@dataclass(frozen=True)
class Slot:
    element: Any  # XsdElement or XsdAnyElement
    min: int
    max: int
    index: int  # position in the flattened model (document order)
    choice: tuple[int, ...]  # ids of the enclosing choice groups with >1 branch


def _slots(group: XsdGroup) -> list[Slot]:
    out: list[Slot] = []

    def walk(g: XsdGroup, lo: int, hi: int, choices: tuple[int, ...]) -> None:
        g_lo = lo * g.min_occurs
        g_hi = hi * (g.max_occurs if g.max_occurs is not None else UNBOUNDED)
        if g.model == "choice" and len(g) > 1:
            choices = (*choices, id(g))
            g_lo = 0 if len(g) > 1 else g_lo  # any one branch may be absent
        for particle in g:
            if isinstance(particle, XsdGroup):
                walk(particle, g_lo, g_hi, choices)
            else:
                p_hi = particle.max_occurs if particle.max_occurs is not None else UNBOUNDED
                out.append(
                    Slot(
                        particle,
                        g_lo * particle.min_occurs,
                        min(g_hi * p_hi, UNBOUNDED),
                        len(out),
                        choices,
                    )
                )

    walk(group, 1, 1, ())
    return out


def _name(slot: Slot) -> str:
    return slot.element.local_name if isinstance(slot.element, XsdElement) else "<any>"


class RestrictionChecker:
    def __init__(self, profile_xsd: str, official_xsd: str) -> None:
        self.profile = xmlschema.XMLSchema(profile_xsd)
        self.official = xmlschema.XMLSchema(official_xsd)
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self) -> list[str]:
        for name, element in self.profile.elements.items():
            official = self.official.elements.get(name)
            if official is None:
                self.problems.append(f"/{element.local_name}: no such global element officially")
                continue
            self._element(element, official, element.local_name)
        return self.problems

    def _element(self, prof: XsdElement, off: XsdElement, path: str) -> None:
        key = (id(prof.type), id(off.type))
        if key in self._seen:
            return
        self._seen.add(key)
        pt, ot = prof.type, off.type
        if pt.is_simple() or pt.has_simple_content():
            if not (ot.is_simple() or ot.has_simple_content()):
                self.problems.append(f"{path}: simple in the profile, complex officially")
                return
            self._simple(
                pt if pt.is_simple() else pt.content, ot if ot.is_simple() else ot.content, path
            )
            self._attributes(pt, ot, path)
            return
        if ot.is_simple() or ot.has_simple_content():
            self.problems.append(f"{path}: complex in the profile, simple officially")
            return
        self._attributes(pt, ot, path)
        self._content(pt.content, ot.content, path)

    def _attributes(self, pt: Any, ot: Any, path: str) -> None:
        p_attrs = dict(getattr(pt, "attributes", {}) or {})
        o_attrs = dict(getattr(ot, "attributes", {}) or {})
        for name, attr in p_attrs.items():
            if name not in o_attrs:
                self.problems.append(f"{path}/@{name}: not an official attribute")
                continue
            self._simple(attr.type, o_attrs[name].type, f"{path}/@{name}")
        for name, attr in o_attrs.items():
            if attr.use == "required" and (name not in p_attrs or p_attrs[name].use != "required"):
                self.problems.append(f"{path}/@{name}: required officially, not in the profile")

    def _content(self, pg: XsdGroup, og: XsdGroup, path: str) -> None:
        p_slots, o_slots = _slots(pg), _slots(og)
        by_name = {_name(s): s for s in o_slots}
        matched: list[tuple[Slot, Slot]] = []
        for ps in p_slots:
            os_ = by_name.get(_name(ps))
            if os_ is None and isinstance(ps.element, XsdAnyElement):
                self.problems.append(f"{path}: wildcard where the official model has none")
                continue
            if os_ is None:
                self.problems.append(f"{path}/{_name(ps)}: not an official child here")
                continue
            if ps.max > os_.max:
                self.problems.append(
                    f"{path}/{_name(ps)}: up to {ps.max} in the profile, {os_.max} officially"
                )
            matched.append((ps, os_))
        in_profile_seq = pg.model == "sequence"
        for (pa, oa), (pb, ob) in itertools.pairwise(matched):
            if in_profile_seq and oa.index > ob.index:
                self.problems.append(f"{path}: {_name(pa)} before {_name(pb)}, officially after")
            shared = set(oa.choice) & set(ob.choice)
            if in_profile_seq and shared and pa.min + pb.min > 0 and oa is not ob:
                self.problems.append(
                    f"{path}: {_name(pa)} and {_name(pb)} together, officially a choice"
                )
        profile_names = {_name(ps): ps for ps in p_slots}
        for os_ in o_slots:
            if os_.min >= 1:
                ps = profile_names.get(_name(os_))
                if ps is None or ps.min < 1:
                    self.problems.append(
                        f"{path}/{_name(os_)}: required officially, optional or "
                        "missing in the profile"
                    )
        for ps, os_ in matched:
            if isinstance(ps.element, XsdElement) and isinstance(os_.element, XsdElement):
                self._element(ps.element, os_.element, f"{path}/{_name(ps)}")

    def _simple(self, pt: Any, ot: Any, path: str) -> None:
        enumeration = getattr(pt, "enumeration", None)
        if enumeration:
            for value in enumeration:
                if not ot.is_valid(str(value)):
                    self.problems.append(f"{path}: enumerated value {value!r} invalid officially")
            return
        patterns = [p for p in (getattr(pt, "patterns", None) or [])]
        if patterns:
            for sample in _samples_for(pt):
                if not ot.is_valid(sample):
                    self.problems.append(f"{path}: {sample!r} valid in the profile, not officially")
                    return
            return
        # Length and digit facets.
        for facet, stricter in (("max_length", min), ("min_length", max)):
            p_val, o_val = _facet(pt, facet), _facet(ot, facet)
            if o_val is not None and (p_val is None or stricter(p_val, o_val) != p_val):
                self.problems.append(f"{path}: {facet} {p_val} looser than official {o_val}")
        p_base, o_base = pt.primitive_type.local_name, ot.primitive_type.local_name
        if p_base != o_base:
            self.problems.append(f"{path}: base type {p_base}, officially {o_base}")


def _facet(simple_type: Any, name: str) -> Any:
    """A facet's value, looking through restriction steps (xmlschema reports only the last)."""
    current = simple_type
    while current is not None:
        value = getattr(current, name, None)
        if value is not None:
            return value
        current = getattr(current, "base_type", None)
    return None


def _unanchored(translated: str) -> str:
    """xmlschema anchors its translated patterns as ^(?:...)$(?!\\n\\Z); hypothesis wants the body."""
    head, tail = "^(?:", ")$(?!\\n\\Z)"
    if translated.startswith(head) and translated.endswith(tail):
        return translated[len(head) : -len(tail)]
    return translated


def _samples_for(simple_type: Any, count: int = 60) -> Iterator[str]:
    """Values the profile type accepts, generated from its patterns by hypothesis."""
    primitive = simple_type.primitive_type.local_name
    base: st.SearchStrategy[str]
    if primitive == "date":
        base = st.dates().map(lambda d: d.isoformat())
    elif primitive == "dateTime":
        offsets = st.sampled_from(["Z", "+08:00", "-05:30", ""])
        base = st.builds(lambda t, z: t.isoformat() + z, st.datetimes(), offsets)
    else:
        regexes = [_unanchored(p.pattern) for p in simple_type.patterns.patterns]
        base = st.one_of(*[st.from_regex(r, fullmatch=True) for r in regexes])
    strategy = base.filter(simple_type.is_valid)
    found: list[str] = []

    @settings(
        max_examples=count, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def collect(value: str) -> None:
        found.append(value)

    collect()
    yield from found
