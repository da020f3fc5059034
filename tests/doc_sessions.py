"""Run the shell sessions printed in the docs, as pasted, and compare what they print.

A session is a fenced ```` ```sh ```` block that can be pasted into a terminal whole:

    curl localhost:8080/set/greeting/hello       # a command (comments after it are fine)
    #> {"result":"OK"}                           # what it prints, one `#> ` line each
    # any other comment explains; bash skips it, so do we

A command spans several lines when a line ends with ``\\`` or opens a here-document
(``<<'EOF'`` ... ``EOF``). Its expected output is the ``#> `` lines right after it:
``...`` inside a line matches any text, a ``#> ...`` line any number of lines (none
included). A command without ``#> `` lines must print nothing. Everything runs in ONE
``bash`` (so ``cd``, variables and ``&`` jobs carry over, as in a terminal), with stderr
merged into stdout, as a terminal shows both.

``rewrite`` maps the documented ports to the ones a test picked (in commands and in the
expected output alike), so documented commands run hermetically.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
MARK = "\x1e"


@dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]
    line: int  # where the command starts in the document (1-based)


@dataclass(frozen=True)
class Block:
    text: str
    line: int

    def steps(self) -> list[Step]:
        return parse_steps(self.text, self.line)


def sh_blocks(document: str) -> list[Block]:
    """Every ```` ```sh ```` block of a Markdown document, with its first line number."""
    return [
        Block(m.group(1), document.count("\n", 0, m.start()) + 2) for m in _FENCE.finditer(document)
    ]


def parse_steps(text: str, first_line: int = 1) -> list[Step]:
    lines = text.splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            if stripped.startswith("#>") and not steps:
                raise ValueError(f"line {first_line + i}: output before any command")
            if stripped.startswith("#>"):
                steps[-1].expected.append(_output(stripped))
            i += 1
            continue
        start = i
        command = [line]
        heredoc = _HEREDOC.search(_strip_comment(line))
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        if heredoc is not None:
            end = heredoc.group(1)
            while i + 1 < len(lines) and lines[i].strip() != end:
                i += 1
                command.append(lines[i])
        steps.append(Step("\n".join(command), [], first_line + start))
        i += 1
    return steps


def _output(stripped: str) -> str:
    return stripped[3:] if stripped.startswith("#> ") else stripped[2:]


def _strip_comment(line: str) -> str:
    return line.split(" # ", 1)[0]


def run_session(
    steps: list[Step],
    cwd: Path,
    env: Mapping[str, str],
    rewrite: Callable[[str], str] = lambda s: s,
    timeout: float = 60.0,
) -> list[str]:
    """Run every step in one bash; what each printed (stdout and stderr)."""
    script = ["exec 2>&1"]
    for n, step in enumerate(steps):
        script.append(f"printf '{MARK}{n}{MARK}\\n'")
        script.append(rewrite(step.command))
    script.append(f"printf '{MARK}end{MARK}\\n'")
    path = cwd / ".session.sh"
    path.write_text("\n".join(script) + "\n")
    try:
        result = subprocess.run(
            ["bash", str(path)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    finally:
        path.unlink(missing_ok=True)
    text = result.stdout.decode(errors="replace")
    outputs: list[str] = []
    for n in range(len(steps)):
        head = f"{MARK}{n}{MARK}\n"
        if head not in text:
            outputs.append(f"<never ran; the session printed:>\n{text}")
            continue
        after = text.split(head, 1)[1]
        nxt = MARK + (str(n + 1) if n + 1 < len(steps) else "end") + MARK
        outputs.append(after.split(nxt, 1)[0])
    return outputs


def matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` is what ``expected`` (``#> `` lines) describes."""
    lines = [line.rstrip() for line in actual.rstrip("\n").splitlines()]
    text = "".join(f"{line}\n" for line in lines) if actual.strip() else ""
    pattern = ""
    for line in expected:
        if line.strip() == "...":
            pattern += r"(?:.*\n)*?"
        else:
            pattern += ".*".join(re.escape(part) for part in line.rstrip().split("...")) + r"\n"
    return re.fullmatch(pattern, text) is not None


def mismatches(
    steps: list[Step], outputs: list[str], rewrite: Callable[[str], str] = lambda s: s
) -> list[str]:
    """One readable report per step whose output is not what the document shows."""
    problems = []
    for step, actual in zip(steps, outputs, strict=True):
        expected = [rewrite(line) for line in step.expected]
        if not matches(expected, actual):
            shown = "\n".join(f"    #> {line}" for line in expected) or "    (nothing)"
            problems.append(
                f"line {step.line}: {rewrite(step.command)}\n  documented:\n{shown}\n"
                f"  printed:\n" + "".join(f"    {line}\n" for line in actual.splitlines())
            )
    return problems


def port_rewriter(ports: Mapping[int, int]) -> Callable[[str], str]:
    """Replace each documented port (as a whole number) with the one picked."""
    if not ports:
        return lambda s: s
    pattern = re.compile(r"(?<!\d)(" + "|".join(str(p) for p in ports) + r")(?!\d)")
    return lambda s: pattern.sub(lambda m: str(ports[int(m.group(1))]), s)


def session_env(home: Path) -> dict[str, str]:
    """A private environment: its own home, state and runtime dirs, no REDIS_GATEWAY_*
    variable of the caller (PATH as it is: the documents say where the binaries are),
    and curl as it behaves in a terminal (no progress meter)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_GATEWAY_")}
    for name in ("XDG_STATE_HOME", "XDG_RUNTIME_DIR", "HOME"):
        (home / name.lower()).mkdir(exist_ok=True)
        env[name] = str(home / name.lower())
    env.pop("STATE_DIRECTORY", None)
    # curl prints a progress meter when its output is not a terminal (here: a pipe);
    # in the terminal the documents show, it does not.
    (home / "home" / ".curlrc").write_text("no-progress-meter\n")
    env["NO_COLOR"] = "1"
    return env
