"""Write deploy/constraints.txt: the exact versions the image installs, the runtime
dependencies of pyproject.toml and everything they pull in, as resolved in this environment
(the one the test suite passed in). `--check` says whether the file is current.

    .venv/bin/python scripts/constraints.py [--check]
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "constraints.txt"
HEADER = """\
# The exact versions the image installs (deploy/Dockerfile: pip install -c), the runtime
# dependencies of pyproject.toml and all they pull in, as resolved where the suite passed.
# Written by scripts/constraints.py; tests/test_deploy.py checks it is current.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> dict[str, str]:
    """name -> installed version, over the requirements and theirs (no extras, this Python)."""
    environment = {**default_environment(), "extra": ""}
    pinned: dict[str, str] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        name = canonical(req.name)
        if name in pinned:
            continue
        dist = metadata.distribution(req.name)
        assert req.specifier.contains(dist.version, prereleases=True), (req, dist.version)
        pinned[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return pinned


def render() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = closure(project["dependencies"])
    return HEADER + "".join(f"{name}=={pinned[name]}\n" for name in sorted(pinned))


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT} is not current: run scripts/constraints.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
