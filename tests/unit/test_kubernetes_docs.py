"""docs/kubernetes.md and deploy/kubernetes/README.md: every `redis-gateway` command they
print (also inside `kubectl exec ... --`) names commands and options that exist; the
docs link each other and the README lists the page."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from supervisor.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "docs" / "kubernetes.md", ROOT / "deploy" / "kubernetes" / "README.md")
_SHELL = {"|", "||", "&&", "&", ";", ">", ">>", "2>", "<"}


def code_lines(page: Path) -> list[str]:
    """Lines of the fenced code blocks, continuation lines joined."""
    lines: list[str] = []
    inside = False
    pending = ""
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def invocations(page: Path) -> list[list[str]]:
    """The arguments of every `redis-gateway` (or `$B`) command in the code blocks."""
    found = []
    for line in code_lines(page):
        for match in re.finditer(r"(?:^\s*|-- )(?:redis-gateway|\$B)\s+(.*)", line):
            tokens = []
            for token in shlex.split(match.group(1), comments=True):
                if token in _SHELL or token.startswith(">"):
                    break
                tokens.append(token)
            found.append(tokens)
    return found


def test_the_pages_print_redis_gateway_commands() -> None:
    kinds = {tuple(args[:2]) for page in PAGES for args in invocations(page)}
    assert {("run", "--configmap-dir"), ("status", "--control-socket")} <= kinds
    assert ("config", "history") in kinds and ("config", "diff") in kinds


@pytest.mark.parametrize(
    "args", [a for page in PAGES for a in invocations(page)], ids=lambda a: " ".join(a)[:60]
)
def test_every_printed_command_parses(args: list[str]) -> None:
    # --help last: click parses (and refuses unknown commands and options) first.
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_readme_links_the_page_and_the_api_source_page_is_merged() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/kubernetes.md)" in readme
    assert not (ROOT / "docs" / "kubernetes-api-source.md").exists()
    text = PAGES[0].read_text()
    for topic in ("..data", "subPath", "terminationGracePeriodSeconds", "preStop", "RBAC"):
        assert topic in text, topic
    for metric in (
        "redis_gateway_reloads_total",
        "redis_gateway_config_drift",
        "redis_gateway_last_reload_successful",
        "redis_gateway_state_write_ok",
    ):
        assert metric in text, metric
    for link in re.findall(r"\]\((\.\./[^)#]+|[a-z-]+\.md)", text):
        assert (PAGES[0].parent / link).exists(), link
