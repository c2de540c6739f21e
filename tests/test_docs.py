"""The README and docs/ stay runnable: every `python -m hybridviz <command> ...` they show names a command whose
`--help` parses and lists each option the line uses; every relative link points to a file; every script they
run exists; the README's page table names every page."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

COMMAND = re.compile(r"-m hybridviz(?![.\w])(?:\s+([a-z][a-z0-9-]*))?([^`]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCRIPT = re.compile(r"(?:python3?|bash)\s+((?:bench|scripts)/[\w./-]+\.(?:py|sh))")


def code_and_spans(text: str) -> list[str]:
    """The command-bearing pieces of a markdown file: each line of a fenced block (continuation lines joined, a
    trailing `# comment` dropped) and each inline code span of the prose (which may cross a line break)."""
    pieces, prose, block, fenced = [], [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            prose.append(line)
            continue
        block.append(line)
        if line.rstrip().endswith("\\"):
            continue
        joined = " ".join(part.rstrip().rstrip("\\") for part in block)
        block = []
        pieces.append(re.sub(r"\s#\s.*$", "", joined))
    pieces += re.findall(r"`([^`]+)`", " ".join(prose))
    return pieces


def documented_commands() -> dict[str, dict[str, set[str]]]:
    """{command: {flag: {files}}} over every hybridviz command line in README.md and docs/*.md ('' is the bare
    `python -m hybridviz`)."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in DOCS:
        for piece in code_and_spans(path.read_text(encoding="utf-8")):
            for match in COMMAND.finditer(piece):
                command, rest = match.group(1) or "", match.group(2)
                rest = re.sub(r"<[^>]*>", " ", rest)  # placeholders such as <the grid's other options>
                rest = re.split(r"\s(?:&&|\|\||;|\|)\s", rest)[0]  # the next command of a chain is not ours
                flags = found.setdefault(command, {})
                flags.setdefault("", set()).add(path.name)
                for flag in FLAG.findall(rest):
                    flags.setdefault(flag, set()).add(path.name)
    return found


def test_docs_name_commands():
    commands = documented_commands()
    for needed in ("evaluate", "train", "experiment", "summarise", "data"):
        assert needed in commands, f"no `python -m hybridviz {needed}` line in README.md or docs/"


# One interpreter asks `python -m hybridviz <command> --help` of every documented command in turn (runpy runs the
# package's __main__ exactly as `python -m` does), so the libraries are imported once, not once per command.
HELP_ALL = """
import contextlib, io, json, runpy, sys
out = {}
for command in json.loads(sys.argv[1]):
    sys.argv = ["hybridviz", *([command] if command else []), "--help"]
    buffer, code = io.StringIO(), None
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            runpy.run_module("hybridviz", run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code
    out[command] = {"code": code, "text": buffer.getvalue()}
print(json.dumps(out))
"""


@pytest.mark.slow  # one interpreter that imports the command line's libraries (~10 s on 2 cores)
def test_documented_commands_parse():
    commands = documented_commands()
    run = subprocess.run([sys.executable, "-c", HELP_ALL, json.dumps(sorted(commands))], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    helps = json.loads(run.stdout.strip().splitlines()[-1])
    problems = []
    for command, flags in sorted(commands.items()):
        shown = f"python -m hybridviz {command}".rstrip()
        result = helps[command]
        if result["code"] not in (0, None):
            problems.append(f"`{shown} --help` exits {result['code']} (in {sorted(flags[''])}): "
                            f"{result['text'].strip()[-300:]}")
            continue
        for flag, files in sorted(flags.items()):
            if flag and flag != "--help" and not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result["text"]):
                problems.append(f"`{shown}` has no option {flag} (used in {sorted(files)})")
    assert not problems, "\n".join(problems)


def test_relative_links_exist():
    broken = []
    for path in DOCS:
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same file
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {target.split("#")[0] for target in LINK.findall(readme)}
    missing = [p.name for p in DOCS[1:] if f"docs/{p.name}" not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_documented_scripts_exist():
    missing = []
    for path in DOCS:
        for piece in code_and_spans(path.read_text(encoding="utf-8")):
            missing += [f"{path.name}: {script}" for script in SCRIPT.findall(piece) if not (ROOT / script).is_file()]
    assert not missing, missing


def test_readme_page_table_names_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").lower()
    pages = [p for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_")]
    assert pages
    for page in pages:
        name = re.sub(r"^[\d_]+", "", page.stem).replace("_", " ").lower()
        assert name in readme, f"pages/{page.name} ({name!r}) is not in the README's page table"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move detail to docs/"
    text = "\n".join(lines)
    for needed in ("python -m venv", "pip install -r requirements.txt", "streamlit run app.py",
                   "http://localhost:8501", 'bash scripts/test.sh -m "not slow"'):
        assert needed in text, f"the README does not say {needed!r}"
