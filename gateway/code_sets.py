"""The ISO 20022 external code sets, as data (data/iso-code-sets.toml, written by
scripts/code_sets.py from a pinned copy of ISO's publication), and the one check every message
gets: each code a message type declares (`MessageType.codes`: path -> code sets) is in its set.
ISO keeps these lists outside the schemas, so the profiles take any four letters; a code outside
its set is refused (NARR) by name, before anything acts on it."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gateway.iso20022.tree import Leaf, Map
from gateway.packaged import packaged


@dataclass(frozen=True)
class CodeSets:
    source: Mapping[str, str]  # the publication, the copy read, its integrity hash
    sets: Mapping[str, frozenset[str]]  # ISO name -> its codes

    def codes(self, *names: str) -> frozenset[str]:
        """The codes of the sets `names` together (KeyError: not a set the data holds). One
        set, the usual case, is given as it is held: no copy per message checked."""
        if len(names) == 1:
            return self.sets[names[0]]
        return frozenset().union(*(self.sets[n] for n in names))


@functools.cache
def code_sets() -> CodeSets:
    with open(packaged("data", "iso-code-sets.toml"), "rb") as fh:
        data = tomllib.load(fh)
    sets = {name: frozenset(entry["codes"]) for name, entry in data["sets"].items()}
    return CodeSets(dict(data["source"]), sets)


def values(m: Map, path: str) -> Iterator[str]:
    """Every value at `path` below `m`, through every repetition on the way."""
    step, _, rest = path.partition("/")
    for node in m.get(step, ()):
        if rest:
            if isinstance(node, dict):
                yield from values(node, rest)
        elif isinstance(node, str):
            yield node.strip()
        elif isinstance(node, Leaf):
            yield node.text


def unknown(m: Map, codes: Mapping[str, tuple[str, ...]]) -> tuple[str, str, str] | None:
    """The first code below `m` (a message's root) outside its sets: (path, code, set names),
    or None."""
    known = code_sets()
    for path, names in codes.items():
        allowed = known.codes(*names)
        for value in values(m, path):
            if value not in allowed:
                return path, value, " or ".join(names)
    return None
