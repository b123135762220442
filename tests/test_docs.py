"""README.md and docs/*.md hold what they point at: every relative link resolves (the file, and the #anchor by
GitHub's rules), no line outside a code block is over 120 characters, every `python -m rollout ...` command parses
with the real command line (rollout/cli.py build_parser), every `make ...` names a target and variables of the
Makefile, every docs page has a table of contents, and the README's layout table names every module.

Where the docs name commands (the convention the checks rely on):
- A command is in a code span (`...`) or a code block. In sh/bash/console blocks every command line is checked; in
  other blocks (terminal output) and code spans, what follows `python -m rollout` and what starts with `make `.
- A placeholder is one of the UPPER-CASE words in PLACEHOLDERS (`STACK`, `NAME`, `TAG`, ...), a whole argument or
  the part after `=` (`prometheus=URL`); the check puts a sample value in its place. `VERB` is any verb (each
  is checked, with `--help`).
  `[--yes]` marks an optional part (checked as present). `<stack>`-style placeholders are refused: a shell reads
  `<` as a redirection.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rollout.cli import build_parser
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_LINE = 120
PLACEHOLDERS = {
    "STACK": "dev", "FROM": "dev", "TO": "staging", "NAME": "app", "RELEASE": "app", "TAG": "v2", "N": "1",
    "DIR": "build", "URL": "http://127.0.0.1:8080/", "LABELS": 'namespace="app-update"', "LOG": "build/run.log",
    "FILE": "build/file", "REGION": "us-west-2", "BUCKET": "acme-app-update-state", "ALIAS": "app-update-state",
}
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "<", ">", ">>", "<<", ">&", "<&", "2>&1"}
# Every package of the import contract: a package added there must have its modules in the layout table.
LAYERED = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])


# --- reading markdown --------------------------------------------------------------------------------------------

@dataclass
class Page:
    path: Path
    prose: list[tuple[int, str]] = field(default_factory=list)  # (line number, text) outside fenced code
    blocks: list[tuple[int, str, list[str]]] = field(default_factory=list)  # (first line, language, lines)


def read(path: Path, text: str | None = None) -> Page:
    page = Page(path)
    fence, lang, body, start = None, "", [], 0
    for number, line in enumerate((path.read_text() if text is None else text).split("\n"), 1):
        opening = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence is None and opening:
            fence, lang, body, start = opening.group(1), opening.group(2).lower(), [], number
        elif fence is not None and re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
            page.blocks.append((start, lang, body))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            page.prose.append((number, line))
    return page


def paragraphs(page: Page):
    """(first line number, text) of each run of prose lines without a blank line: code spans may wrap lines."""
    run: list[tuple[int, str]] = []
    for number, line in [*page.prose, (0, "")]:
        if line.strip():
            run.append((number, line))
        elif run:
            yield run[0][0], "\n".join(text for _, text in run)
            run = []


CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def code_spans(page: Page):
    for number, text in paragraphs(page):
        for match in CODE_SPAN.finditer(text):
            yield number + text[: match.start()].count("\n"), " ".join(match.group(2).split())


def headings(page: Page) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code."""
    found = []
    for _, line in page.prose:
        match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$", line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text lower-cased, every character that is not a letter, a
    digit, a space, `-` or `_` dropped, spaces made `-` (no collapsing: `a -- b` is `a----b`)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    kept = "".join(c for c in text.lower() if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, text in headings(page):
        slug = github_slug(text)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    for _, line in page.prose:  # explicit HTML anchors
        found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return found


# --- the checks (each returns problems, one line each) -----------------------------------------------------------

def links(page: Page):
    """(line number, target) of every inline link, image and reference definition outside code."""
    for number, text in paragraphs(page):
        bare = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)
        for match in re.finditer(r"\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)", bare):
            yield number + bare[: match.start()].count("\n"), match.group(1)
        for match in re.finditer(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", bare, re.M):
            yield number + bare[: match.start()].count("\n"), match.group(1)


def link_problems(page: Page, pages: dict[Path, Page] | None = None) -> list[str]:
    problems = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto: are not this check's business
        where = f"{page.path.name}:{number}: link {target!r}"
        file_part, _, anchor = target.partition("#")
        resolved = (page.path.parent / file_part).resolve() if file_part else page.path.resolve()
        if not resolved.exists():
            problems.append(f"{where}: no file {file_part}")
            continue
        if not anchor:
            continue
        if resolved.suffix != ".md":
            if not re.fullmatch(r"L\d+(-L\d+)?", anchor):
                problems.append(f"{where}: only #L<n> anchors exist in {file_part}")
            continue
        target_page = (pages or {}).get(resolved) or (page if resolved == page.path.resolve() else read(resolved))
        if anchor not in anchors(target_page):
            problems.append(f"{where}: no heading with anchor #{anchor} in {resolved.name}")
    return problems


def long_lines(page: Page) -> list[str]:
    return [f"{page.path.name}:{number}: {len(line)} characters (at most {MAX_LINE} outside code blocks)"
            for number, line in page.prose if len(line) > MAX_LINE]


def commands(page: Page):
    """(line number, program, arguments) of every rollout and make command the page names; program is `rollout`
    or `make`."""
    for start, lang, body in page.blocks:
        logical: list[tuple[int, str]] = []
        for offset, line in enumerate(body, 1):
            if logical and logical[-1][1].endswith("\\"):
                logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line.strip())
            else:
                logical.append((start + offset, line))
        for number, line in logical:
            if lang in SHELL_LANGS:
                yield from ((number, *found) for found in shell_commands(re.sub(r"^\s*\$\s+", "", line)))
            else:
                yield from ((number, *found) for found in named_commands(line))
    for number, span in code_spans(page):
        yield from ((number, *found) for found in named_commands(span))


def named_commands(text: str):
    """A rollout command wherever `python -m rollout` appears; a make command when the text starts with `make`."""
    at = text.find("python -m rollout")
    if at >= 0:
        yield from shell_commands(text[at:])
    elif re.match(r"^\s*make(\s|$)", text):
        yield from shell_commands(text)


def shell_commands(line: str):
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote: not a command this check can read
        return
    simple: list[str] = []
    for word in [*words, ";"]:
        if word in SHELL_OPERATORS or re.fullmatch(r"[0-9]*[<>&|;()]+", word):
            yield from program(simple)
            simple = []
        else:
            simple.append(word)


def program(words: list[str]):
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # AWS_PROFILE=prod python -m rollout ...
    # Without arguments it is the program's name in a sentence (`python -m rollout`), not a command.
    if len(words) > 3 and re.fullmatch(r"(.*/)?python3?", words[0]) and words[1:3] == ["-m", "rollout"]:
        yield "rollout", words[3:]
    elif len(words) > 1 and re.fullmatch(r"(venv/bin/)?rollout", words[0]):
        yield "rollout", words[1:]
    elif words and words[0] == "make":
        yield "make", words[1:]


def with_samples(arguments: list[str]) -> list[list[str]]:
    """The argument lists a documented command stands for: placeholders filled in, `[...]` kept, VERB expanded."""
    filled = []
    for word in arguments:
        word = word[1:-1] if word.startswith("[") and word.endswith("]") else word.strip("[]")
        key, equals, value = word.partition("=")
        if word in PLACEHOLDERS:
            word = PLACEHOLDERS[word]
        elif equals and value in PLACEHOLDERS and not key.startswith("-"):
            word = f"{key}={PLACEHOLDERS[value]}"
        filled.append(word)
    if "VERB" not in filled:
        return [filled]
    verbs = next(a for a in exact_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    # `python -m rollout VERB` names any verb: each verb with what follows, as far as `--help` reads it.
    return [[verb if word == "VERB" else word for word in filled] + ["--help"] for verb in verbs]


@functools.cache
def exact_parser() -> argparse.ArgumentParser:
    """The real parser, taking options only as spelt out (argparse would read `--releas` as `--release`)."""
    parser = build_parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        current.allow_abbrev = False
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return parser


def rollout_problem(arguments: list[str]) -> str | None:
    """None when the real parser takes the arguments (or prints help); else its complaint."""
    for argv in with_samples(arguments):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exact_parser().parse_args(argv)
        except SystemExit as stop:
            if stop.code not in (0, None):
                return f"python -m rollout {shlex.join(argv)}: {err.getvalue().strip().splitlines()[-1]}"
    return None


def makefile() -> tuple[set[str], set[str]]:
    """The Makefile's targets and the variables it reads."""
    text = (ROOT / "Makefile").read_text()
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_.%/$()-][^:=\t#]*?)\s*:(?!=)", text, re.M):
        targets.update(name for name in match.group(1).split() if not name.startswith("."))
    variables = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text))
    variables |= set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[?:+]?=", text, re.M))
    return targets, variables


def make_problem(arguments: list[str]) -> str | None:
    targets, variables = makefile()
    for word in arguments:
        name, equals, _ = word.partition("=")
        if word.startswith("-"):
            continue
        if equals and name not in variables:
            return f"make {shlex.join(arguments)}: the Makefile reads no variable {name}"
        if not equals and word not in targets:
            return f"make {shlex.join(arguments)}: no target {word!r} (targets: {', '.join(sorted(t for t in targets if '/' not in t))})"
    return None


def command_problems(page: Page) -> list[str]:
    problems = []
    for number, kind, arguments in commands(page):
        problem = rollout_problem(arguments) if kind == "rollout" else make_problem(arguments)
        if problem:
            problems.append(f"{page.path.name}:{number}: {problem}")
    return problems


def contents_problems(page: Page) -> list[str]:
    """A docs page lists every one of its `##` sections, in order, under `## Contents` (right after the title)."""
    titled = headings(page)
    sections = [text for level, text in titled if level == 2]
    if not sections or sections[0] != "Contents":
        return [f"{page.path.name}: its first section is not '## Contents'"]
    listed = []
    for number, line in page.prose:
        match = re.match(r"^\s*[-*]\s+\[[^\]]+\]\(#([^)]+)\)", line)
        if match and number > next(n for n, text in page.prose if text.startswith("## Contents")):
            listed.append(match.group(1))
        if line.startswith("## ") and listed:
            break
    wanted = [github_slug(text) for text in sections[1:]]
    top_level = [slug for slug in listed if slug in wanted]
    if top_level != wanted:
        return [f"{page.path.name}: the contents list {top_level}, the sections are {wanted}"]
    return []


# --- the pages as they are -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages() -> dict[Path, Page]:
    return {path.resolve(): read(path) for path in PAGES}


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_relative_link_and_anchor_resolves(path, pages):
    assert link_problems(pages[path.resolve()], pages) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_no_line_outside_code_blocks_is_over_120_characters(path, pages):
    assert long_lines(pages[path.resolve()]) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_rollout_and_make_command_parses(path, pages):
    assert command_problems(pages[path.resolve()]) == []


@pytest.mark.parametrize("path", PAGES[1:], ids=page_id)
def test_every_docs_page_has_a_table_of_contents(path, pages):
    assert contents_problems(pages[path.resolve()]) == []


def test_the_checks_see_the_readmes_commands(pages):
    found = {(kind, " ".join(args[:1])) for _, kind, args in commands(pages[(ROOT / "README.md").resolve()])}
    assert {("make", "preview"), ("make", "test"), ("rollout", "preview"), ("rollout", "canary")} <= found


def test_the_readme_links_every_docs_page(pages):
    readme = pages[(ROOT / "README.md").resolve()]
    linked = {(readme.path.parent / target.partition("#")[0]).resolve() for _, target in links(readme)}
    assert [page_id(path) for path in PAGES[1:] if path.resolve() not in linked] == []


def layout_table(page: Page) -> list[str]:
    """The first column of the README's `| path | what |` table."""
    rows, inside = [], False
    for _, line in page.prose:
        if re.match(r"^\|\s*path\s*\|\s*what\s*\|", line):
            inside = True
        elif inside and line.startswith("|"):
            rows.append(line.split("|")[1])
        elif inside:
            break
    return [path for row in rows[1:] for path in re.findall(r"`([^`]+)`", row)]


def test_the_layout_table_names_every_module_and_nothing_that_is_gone(pages):
    named = layout_table(pages[(ROOT / "README.md").resolve()])
    modules = sorted(str(p.relative_to(ROOT)) for package in LAYERED for p in (ROOT / package).glob("*.py")
                     if p.name != "__init__.py")
    assert [m for m in modules if m not in named] == []
    assert [p for p in named if "<" not in p and not (ROOT / p.rstrip("/")).exists()] == []


# --- the checks catch what they are for ------------------------------------------------------------------------

def page_of(text: str, name: str = "README.md") -> Page:
    return read(ROOT / name, text)


@pytest.mark.parametrize(("heading", "anchor"), [
    ("From the workshop's kubectl to this project", "from-the-workshops-kubectl-to-this-project"),
    ("Progressive delivery: `rollout canary`", "progressive-delivery-rollout-canary"),
    ("What `preview --out` writes and removes", "what-preview---out-writes-and-removes"),
    ("Before the first `pulumi up`: `rollout preflight`", "before-the-first-pulumi-up-rollout-preflight"),
    ("rollout canary", "rollout-canary"),
    ("The pipeline (`.github/workflows/`)", "the-pipeline-githubworkflows"),
    ("A [link](x.md) and snake_case", "a-link-and-snake_case"),
])
def test_anchors_follow_githubs_rules(heading, anchor):
    assert github_slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor():
    assert anchors(page_of("# Title\n## Notes\n## Notes\n## Notes\n")) >= {"notes", "notes-1", "notes-2"}


@pytest.mark.parametrize(("text", "complaint"), [
    ("See [the guide](docs/nosuch.md).", "no file docs/nosuch.md"),
    ("See [EKS](docs/eks.md#no-such-section).", "no heading with anchor #no-such-section in eks.md"),
    ("# T\n## Here\nSee [above](#there).", "no heading with anchor #there"),
    ("See [it][ref].\n\n[ref]: docs/gone.md", "no file docs/gone.md"),
    ("See [the Makefile](Makefile#help).", "only #L<n> anchors exist in Makefile"),
    ("A heading in code is no anchor:\n```sh\n# Not here\n```\n[x](#not-here)", "no heading with anchor #not-here"),
])
def test_a_broken_link_is_caught(text, complaint):
    problems = link_problems(page_of(text))
    assert len(problems) == 1 and complaint in problems[0]


def test_good_links_pass():
    text = ("# T\n## Here it is\n[a](#here-it-is) [b](docs/eks.md) [c](Makefile#L3) [d](https://example.com/x)\n"
            "`[not a link](nosuch.md)`\n")
    assert link_problems(page_of(text)) == []


def test_the_real_pages_with_one_thing_broken_are_caught():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/eks.md)" in readme and "venv/bin/python -m rollout history dev" in readme
    moved = page_of(readme.replace("](docs/eks.md)", "](docs/eks-cluster.md)"))
    assert [p for p in link_problems(moved) if "no file docs/eks-cluster.md" in p] != []
    renamed = page_of(readme.replace("rollout history dev", "rollout revisions dev"))
    assert [p for p in command_problems(renamed) if "invalid choice: 'revisions'" in p] != []
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "## rollout canary" in operations
    retitled = page_of(operations.replace("## rollout canary", "## Canary runs"), "docs/operations.md")
    assert [p for p in link_problems(retitled) if "#rollout-canary" in p] != []


def test_a_long_line_is_caught_outside_code_only():
    text = "x" * 121 + "\n```text\n" + "y" * 300 + "\n```\n" + "z" * 120 + "\n"
    assert long_lines(page_of(text)) == ["README.md:1: 121 characters (at most 120 outside code blocks)"]


@pytest.mark.parametrize(("text", "complaint"), [
    ("```sh\nvenv/bin/python -m rollout nosuchverb dev\n```", "invalid choice: 'nosuchverb'"),
    ("Run `python -m rollout canary staging --release app --tag v2 --max-p999 1s`.", "unrecognized arguments"),
    ("```sh\npython -m rollout history dev --releas app\n```", "unrecognized arguments: --releas app"),
    ("```sh\nAWS_PROFILE=prod python -m rollout promote staging\n```", "the following arguments are required: TO"),
    ("```sh\npython -m rollout undo dev --to-revision two\n```", "--to-revision"),
    ("```text\nfinish with: python -m rollout abort staging --yes\n```", "required: --release"),
    ("```sh\npython -m rollout canary \\\n    STACK --release NAME --tag TAG --steps 5,500\n```", "--steps"),
    ("```sh\npython -m rollout preflight <stack>\n```", "the following arguments are required: stack"),
    ("```sh\nmake test && venv/bin/python -m rollout status\n```", "required: stack"),
])
def test_an_unknown_verb_option_or_bad_argument_is_caught(text, complaint):
    problems = command_problems(page_of(text))
    assert len(problems) == 1 and complaint in problems[0], problems


@pytest.mark.parametrize(("text", "complaint"), [
    ("Run `make previw`.", "no target 'previw'"),
    ("```sh\nmake preview STAK=prod\n```", "reads no variable STAK"),
    ("```sh\ncd x && make lint benchmark\n```", "no target 'benchmark'"),
])
def test_an_unknown_make_target_or_variable_is_caught(text, complaint):
    problems = command_problems(page_of(text))
    assert len(problems) == 1 and complaint in problems[0], problems


def test_documented_placeholders_and_forms_pass():
    text = "\n".join([
        "```sh",
        "make preview STACK=local",
        "venv/bin/python -m rollout history STACK --release NAME   # a comment",
        "venv/bin/python -m rollout abort STACK --release NAME [--yes]",
        "AWS_PROFILE=prod venv/bin/python -m rollout promote FROM TO",
        "venv/bin/python -m rollout canary STACK --release NAME --tag TAG --metrics prometheus=URL",
        "venv/bin/python -m rollout preview local --json > plan.json",
        "rollout undo STACK --to-revision N",
        "```",
        "Every verb has help: `python -m rollout VERB --help`; `python -m rollout -C DIR status dev`; `make`.",
        "The program's name alone is no command: `python -m rollout`, `venv/bin/rollout`.",
    ])
    page = page_of(text)
    assert command_problems(page) == []
    assert len(list(commands(page))) == 10


def test_a_docs_page_without_a_complete_table_of_contents_is_caught():
    good = "# T\n\n## Contents\n\n- [One](#one)\n- [Two `x`](#two-x)\n  - [Sub](#sub)\n\n## One\n## Two `x`\n### Sub\n"
    assert contents_problems(page_of(good, "docs/t.md")) == []
    missing = good.replace("- [Two `x`](#two-x)\n", "")
    assert contents_problems(page_of(missing, "docs/t.md")) != []
    assert contents_problems(page_of("# T\n## One\n", "docs/t.md")) != []
