"""Where the files the gateway ships are: inside the package (gateway/schemas, gateway/data),
found through importlib.resources, so a wheel installed anywhere finds them. In a checkout
those folders link to the top-level schemas/ and data/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def packaged(*parts: str) -> Path:
    """A shipped file or folder, e.g. packaged("data", "participants.toml")."""
    return Path(str(resources.files("gateway").joinpath(*parts)))
