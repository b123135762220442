"""Fuzz `preview` with seeded random mutations of every stack file (issue #14).

Whatever the stack file holds, preview ends with exit 0 (and manifests written) or exit 2
(one line per problem, nothing written); never a traceback, never exit 1. Run more cases by
hand with FUZZ_CASES=2000 (and another FUZZ_SEED); a failure names the seed, the case and
the mutations, so it can be replayed.
"""

from __future__ import annotations

import copy
import datetime
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.cli import main
from tests.conftest import ROOT, STACK_FILES

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "120"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "14"))

_DIGITS = "FUZZ-DIGITS-SENTINEL"

# ---------------------------------------------------------------------------------------------
# Mutations of the parsed stack file (each picks a random value or key in the document)
# ---------------------------------------------------------------------------------------------


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a value in the document (the document itself excluded)."""
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*path, key))
            out.extend(_nodes(value, (*path, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.append((*path, i))
            out.extend(_nodes(value, (*path, i)))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _set(rng: random.Random, doc: Any, make: Callable[[random.Random, Any], Any]) -> str:
    paths = _nodes(doc)
    if not paths:
        return "nothing to change"
    path = rng.choice(paths)
    parent = _parent(doc, path)
    parent[path[-1]] = make(rng, parent[path[-1]])
    return ".".join(map(str, path))


RETYPES = [42, "text", 3.5, True, False, None, [1, "a"], {"k": "v"}, 0, -1, "", "25%", "100%", "0"]
# 2**31 - 1 is the largest count config accepts: everything downstream (forecast, canary
# arithmetic) must stay fast there too.
HUGE = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, 10**99]
NEGATIVE = [-1, -(2**31), -(2**31) - 1, -(2**63), -(10**30)]
UNICODE = ["ünïcödé", "日本語", "🚀", "\u202eevil", "e\u0301", "\x00", "\t\n", "\ufeff", "ＡＢＣ", "\U0001f600" * 3,
           "v1\u200b", "٣"]


def m_retype(rng, doc):
    return _set(rng, doc, lambda r, old: copy.deepcopy(r.choice(RETYPES)))


def m_delete(rng, doc):
    paths = _nodes(doc)
    if not paths:
        return "nothing to delete"
    path = rng.choice(paths)
    del _parent(doc, path)[path[-1]]
    return ".".join(map(str, path))


def m_rename(rng, doc):
    keyed = [p for p in _nodes(doc) if isinstance(p[-1], str)]
    if not keyed:
        return "no key"
    path = rng.choice(keyed)
    parent, key = _parent(doc, path), path[-1]
    new = rng.choice([key.upper(), key[:-1], key + "x", key.replace("a", "\u0430"), "", " " + key,
                      key.replace(":", ""), "app-update:" + key, key + ":", "x" * 300, "\U0001f600"])
    parent[new] = parent.pop(key)
    return f"{'.'.join(map(str, path))} -> {new!r}"


def m_huge(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice(HUGE))


def m_negative(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice(NEGATIVE))


def m_unicode(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice(UNICODE))


def m_long(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice("xa-.") * r.choice([64, 129, 1000, 100_000]))


def m_null(rng, doc):
    return _set(rng, doc, lambda r, old: None)


def m_float(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice([0.5, 5.0, -0.0, 1e308, float("inf"), float("nan")]))


def m_empty(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice([{}, [], ""]))


def m_date(rng, doc):
    return _set(rng, doc, lambda r, old: r.choice([datetime.date(2024, 5, 1), datetime.datetime(2024, 5, 1, 10, 0)]))


def m_set(rng, doc):
    return _set(rng, doc, lambda r, old: {"a", "b"})


def m_digits(rng, doc):
    return _set(rng, doc, lambda r, old: _DIGITS)


def m_swap(rng, doc):
    """Put one part of the file where another belongs (a release where the cluster goes...)."""
    paths = _nodes(doc)
    if len(paths) < 2:
        return "nothing to swap"
    a, b = rng.sample(paths, 2)
    if a[: len(b)] == b or b[: len(a)] == a:
        return "nested"
    pa, pb = _parent(doc, a), _parent(doc, b)
    pa[a[-1]], pb[b[-1]] = copy.deepcopy(pb[b[-1]]), copy.deepcopy(pa[a[-1]])
    return f"{a} <-> {b}"


TREE_MUTATIONS = [m_retype, m_delete, m_rename, m_huge, m_negative, m_unicode, m_long, m_null, m_float, m_empty,
                  m_date, m_set, m_digits, m_swap]

# Mutations of the file's text, after it is written out


def t_bytes(rng, data: bytes) -> tuple[bytes, str]:
    at = rng.randrange(len(data) + 1)
    junk = rng.choice([b"\xff\xfe", b"\xc3", b"\x00", b"\x1b[31m", b"\xed\xa0\x80"])
    return data[:at] + junk + data[at:], f"bytes {junk!r} at {at}"


def t_truncate(rng, data: bytes) -> tuple[bytes, str]:
    at = rng.randrange(len(data) + 1)
    return data[:at], f"truncated at {at}"


def t_duplicate_line(rng, data: bytes) -> tuple[bytes, str]:
    lines = data.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    return b"".join(lines[: i + 1] + [lines[i]] + lines[i + 1:]), f"line {i + 1} twice"


def t_alias_bomb(rng, data: bytes) -> tuple[bytes, str]:
    width = rng.choice([3, 9, 10])
    lines = [f"b0: &b0 [{', '.join(['x'] * width)}]"]
    lines += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * width)}]" for i in range(1, rng.choice([3, 6, 9]))]
    return "\n".join(lines).encode() + b"\n" + data, f"alias bomb {width} wide"


def t_indent(rng, data: bytes) -> tuple[bytes, str]:
    lines = data.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    lines[i] = rng.choice([b"  ", b"\t", b" "]) + lines[i]
    return b"".join(lines), f"line {i + 1} indented"


TEXT_MUTATIONS = [t_bytes, t_truncate, t_duplicate_line, t_alias_bomb, t_indent]

# Excluded mutation kinds, each with the traceback in a file outside the rollout CLI it found.
EXCLUDED: dict[str, str] = {}


def mutated(rng: random.Random, original: Any) -> tuple[bytes, list[str]]:
    doc = copy.deepcopy(original)
    notes = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        mutation = rng.choice([m for m in TREE_MUTATIONS if m.__name__ not in EXCLUDED])
        notes.append(f"{mutation.__name__}: {mutation(rng, doc)}")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    text = text.replace(f"'{_DIGITS}'", "9" * 5000).replace(_DIGITS, "9" * 5000)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        mutation = rng.choice([m for m in TEXT_MUTATIONS if m.__name__ not in EXCLUDED])
        data, note = mutation(rng, data)
        notes.append(f"{mutation.__name__}: {note}")
    return data, notes


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "project"
    root.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    for package in ("components", "model"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    for stack_file in STACK_FILES:
        shutil.copy(stack_file, root / stack_file.name)
    return root


def test_fuzzed_stack_files_preview_to_exit_0_or_2_without_traceback(fuzz_project, capsys, monkeypatch):
    monkeypatch.delenv("APP_UPDATE_DEBUG", raising=False)
    rng = random.Random(FUZZ_SEED)
    originals = {p.name[len("Pulumi."):-len(".yaml")]: yaml.safe_load(p.read_text()) for p in STACK_FILES}
    outcomes = {0: 0, 2: 0}
    for case in range(FUZZ_CASES):
        stack = rng.choice(sorted(originals))
        data, notes = mutated(rng, originals[stack])
        (fuzz_project / f"Pulumi.{stack}.yaml").write_bytes(data)
        out_dir = fuzz_project.parent / f"out-{case}"
        code = main(["-C", str(fuzz_project), "preview", stack, "--out", str(out_dir)])
        captured = capsys.readouterr()
        replay = f"FUZZ_SEED={FUZZ_SEED} case {case}, stack {stack}: {notes}\nstderr: {captured.err[-2000:]}"
        assert code in (0, 2), replay
        assert "Traceback" not in captured.err, replay
        if code == 0:
            assert any(out_dir.glob("01-*.yaml")) and captured.out, replay
        else:
            assert not out_dir.exists(), replay
            assert captured.out == "" and captured.err.strip(), replay
            assert all(line.strip() for line in captured.err.splitlines()), replay
        outcomes[code] += 1
    # the mutations must leave some stacks valid and break others, or the fuzzing tests little
    if FUZZ_CASES >= 50:
        assert outcomes[0] and outcomes[2], outcomes
