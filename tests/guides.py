"""The guides' commands, as a reader runs them: every ```sh block of a guide, line by line
(backslash continuations joined), in one folder, in order, through bash; `# exit N` after a
command is the exit code it must end with (0 otherwise). A ```python block whose first line
is `# NAME.py` is saved as NAME.py at that point. `connect-gateway run` starts in the
background (the guide says "in a second shell") and is stopped, and must exit 0, at the end.
Lines that install (pip) are not run: the caller checks them against how it installed."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Step:
    kind: str  # "sh", "file"
    text: str  # the command, or the file's content
    expect: int = 0
    name: str = ""  # the file's name


def steps(guide: Path) -> list[Step]:
    found: list[Step] = []
    for lang, body in FENCE.findall(guide.read_text()):
        if lang == "python":
            first, _, _ = body.partition("\n")
            if re.fullmatch(r"# [\w.-]+\.py", first.strip()):
                found.append(Step("file", body, name=first.strip()[2:]))
        elif lang == "sh":
            for line in body.replace("\\\n", " ").splitlines():
                command, _, comment = line.partition("   #")
                if not command.strip() or command.lstrip().startswith("#"):
                    continue
                code = re.search(r"\bexit (\d+)", comment)
                found.append(Step("sh", command.strip(), int(code.group(1)) if code else 0))
    return found


def follow(
    guide: Path, folder: Path, env: dict[str, str], timeout: float = 180
) -> list[tuple[Step, subprocess.CompletedProcess[str]]]:
    """Run the guide; (step, what it did) for each command run."""
    done: list[tuple[Step, subprocess.CompletedProcess[str]]] = []
    service: subprocess.Popen[bytes] | None = None
    log = folder / "connect-gateway-run.log"
    try:
        for step in steps(guide):
            if step.kind == "file":
                (folder / step.name).write_text(step.text)
                continue
            if step.text.startswith("pip "):
                continue
            if step.text == "connect-gateway run":
                with open(log, "wb") as out:
                    service = subprocess.Popen(
                        ["bash", "-c", "exec connect-gateway run"],
                        cwd=folder, env=env, stdout=out, stderr=out,
                    )  # fmt: skip
                deadline = time.monotonic() + timeout
                while b"gateway ready" not in log.read_bytes():
                    assert service.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
                continue
            result = subprocess.run(
                ["bash", "-c", "set -o pipefail; " + step.text],
                cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
                check=False,
            )  # fmt: skip
            assert result.returncode == step.expect, (
                f"{guide.name}: `{step.text}` ended {result.returncode}, the guide says "
                f"{step.expect}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
            done.append((step, result))
    finally:
        if service is not None:
            service.send_signal(signal.SIGINT)  # Ctrl-C, as the guide says
            code = service.wait(90)
            assert code == 0, log.read_text()
    return done
