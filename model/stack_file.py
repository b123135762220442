"""Stack files, read as the Pulumi CLI reads them, and defensively: no Pulumi import.

Project defaults from Pulumi.yaml, then `Pulumi.<stack>.yaml`; every value as the CLI would
pass it to the program (structured ones as JSON text, see cli_string). Read defensively
(load_yaml_file): regular files of at most 1 MiB, UTF-8, plain JSON-like values only, aliases
bounded; every other case is a StackFileError naming the file and the key path.
"""


from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Limits on what a stack file (or Pulumi.yaml) may be; real ones are a few KB, 5 levels deep.
MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_VALUES = 100_000  # values (scalars, lists, mappings) with every alias expanded
MAX_DEPTH = 64  # nesting of lists and mappings
MAX_INT_DIGITS = 100  # an integer longer than this is no setting of anything
MAX_STACK_NAME = 100  # Pulumi's own limit on stack names
_MAX_PROBLEMS = 20

_STACK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_PLAIN_KEY = re.compile(r"[^\s.\[\]\"'\\]+")
_SURROGATE = re.compile("[\ud800-\udfff]")

_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
_NOT_PLAIN = {
    _TAG + "timestamp": "a date is not a plain value; quote it",
    _TAG + "binary": "binary data (!!binary) is not a plain value",
    _TAG + "set": "a set (!!set) is not a plain value; use a list",
    _TAG + "omap": "an ordered map (!!omap) is not a plain value; use a mapping",
    _TAG + "pairs": "a list of pairs (!!pairs) is not a plain value; use a mapping",
}


class StackFileError(Exception):
    """The stack file (or Pulumi.yaml, or the stack name) cannot be used: one line per problem.

    `problems` holds the lines; each names the file, and the key path where there is one.
    """

    def __init__(self, *problems: str):
        self.problems = list(problems) or ["invalid stack file"]
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------
# Reading YAML files safely: regular files only, bounded, UTF-8, plain JSON-like values only
# ---------------------------------------------------------------------------------------------


def read_limited(path: Path, label: str | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; StackFileError otherwise.

    Directories, FIFOs and devices are refused before they are opened (a FIFO is opened
    non-blocking, so a swap between the check and the open cannot hang either).
    """
    label = label or path.name
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise StackFileError(f"{label}: no such file") from None
    except OSError as error:
        raise StackFileError(f"{label}: cannot read it: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise StackFileError(f"{label}: is {_file_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise StackFileError(f"{label}: is {info.st_size:,} bytes; a stack file may be at most {limit:,} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise StackFileError(f"{label}: cannot read it: {error.strerror or error}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StackFileError(f"{label}: is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise StackFileError(f"{label}: cannot read it: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise StackFileError(f"{label}: is more than {limit:,} bytes; a stack file may be at most {limit:,} bytes")
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def load_yaml_file(path: Path, label: str | None = None) -> Any:
    """A YAML file of plain values (str, int, float, bool, null, lists, string-keyed mappings).

    Everything else is a StackFileError naming the file and, per value, its key path and line:
    bytes that are not UTF-8, invalid YAML, dates, sets, binary, other tags, non-string or
    repeated keys, integers of more than MAX_INT_DIGITS digits, .inf/.nan, unpaired surrogates,
    nesting deeper than MAX_DEPTH, more than MAX_VALUES values once aliases are expanded, and
    aliases that contain themselves.
    """
    label = label or path.name
    return parse_yaml(read_limited(path, label), label)


def _loader() -> type:
    """libyaml's safe loader where PyYAML was built with it. (yaml is imported when a file is read, not with this
    module: `rollout --help` and `rollout forecast` read none.)"""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(data: bytes, label: str) -> Any:
    """Plain values from YAML bytes (see load_yaml_file); StackFileError names `label`."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise StackFileError(f"{label}: line {line}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                             f"{error.start}); save the file as UTF-8") from None
    try:
        _check_nesting(text, label)
        loader = _loader()(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_plain(node, label, loader)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise StackFileError(_yaml_problem(label, error, data)) from None
    except RecursionError:
        raise StackFileError(f"{label}: nested too deeply (at most {MAX_DEPTH} levels)") from None


def _yaml_problem(label: str, error: yaml.YAMLError, data: bytes) -> str:
    import yaml

    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "reason", None)
    where = ""
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}: "
    elif isinstance(getattr(error, "position", None), int):
        line = data[:error.position].count(b"\n") + 1
        where = f"line {line}: "
    if isinstance(error, yaml.reader.ReaderError):
        problem = f"character #x{error.character:04x} is not allowed: {error.reason}" if isinstance(
            error.character, int) else error.reason
    context = getattr(error, "context", None)
    text = " ".join(str(part) for part in (problem, f"({context})" if context else None) if part) or str(error)
    return f"{label}: {where}not valid YAML: {' '.join(text.split())}"


def _check_nesting(text: str, label: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream, before anything is composed.

    libyaml's composer recurses (it crashes the process on deep enough input) and its parser
    slows down quadratically with depth; the events stop at the first level too many.
    """
    import yaml

    depth = 0
    starts = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
    ends = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
    for event in yaml.parse(text, Loader=_loader()):
        if isinstance(event, starts):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise StackFileError(f"{label}: line {line}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, ends):
            depth -= 1


def show_path(path: tuple[str | int, ...]) -> str:
    """`config.app-update:releases.app.tag`, `config.aws:allowedAccountIds[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _PLAIN_KEY.fullmatch(part) else json.dumps(part)
            out += f".{shown}" if out else shown
    return out or "(top)"


def _check_plain(root: yaml.Node, label: str, loader: Any) -> None:
    """Walk the composed document once per node (aliases shared), checking every value is plain.

    Counts the values the document expands to without expanding it: an alias bomb of a few
    hundred bytes is refused in microseconds instead of being built in gigabytes.
    """
    import yaml

    problems: list[str] = []
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def fail(node: yaml.Node, path: tuple[str | int, ...], rule: str) -> None:
        problems.append(f"{label}: {show_path(path)}: {rule} (line {node.start_mark.line + 1})")

    work: list[tuple[bool, yaml.Node, tuple[str | int, ...]]] = [(False, root, ())]
    while work:
        leaving, node, path = work.pop()
        key = id(node)
        if leaving:
            open_nodes.discard(key)
            size = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            if size > MAX_VALUES:
                raise StackFileError(f"{label}: {show_path(path)}: expands to more than {MAX_VALUES:,} values "
                                     f"through aliases (line {node.start_mark.line + 1}); a stack file needs far fewer")
            sizes[key] = size
            continue
        if key in sizes:
            continue  # an alias of a node already checked
        if key in open_nodes:
            raise StackFileError(f"{label}: {show_path(path)}: an alias refers to a value that contains it "
                                 f"(line {node.start_mark.line + 1})")
        open_nodes.add(key)
        work.append((True, node, path))
        children: list[tuple[yaml.Node, tuple[str | int, ...]]] = []
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, path, loader, fail)
        elif isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                fail(node, path, _NOT_PLAIN.get(node.tag, f"the tag {node.tag} is not allowed in a stack file"))
            children = [(child, (*path, i)) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            if node.tag != _TAG + "map":
                fail(node, path, _NOT_PLAIN.get(node.tag, f"the tag {node.tag} is not allowed in a stack file"))
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _TAG + "merge":
                    children.append((value_node, path))  # `<<: *defaults` merges a mapping in
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
                    shown = _show_scalar(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "[…]"
                    fail(key_node, path, f"the key {shown} is not a string; quote it")
                    continue
                if key_node.value in seen:
                    fail(key_node, (*path, key_node.value), "appears twice in the same mapping")
                seen.add(key_node.value)
                if _SURROGATE.search(key_node.value):
                    fail(key_node, path, "a key holds an unpaired surrogate (\\uD800-\\uDFFF): not valid Unicode")
                children.append((key_node, (*path, key_node.value)))
                children.append((value_node, (*path, key_node.value)))
        if len(problems) >= _MAX_PROBLEMS:
            break
        for child, child_path in reversed(children):
            work.append((False, child, child_path))
    if problems:
        if len(problems) >= _MAX_PROBLEMS:
            problems.append(f"{label}: (stopped after {_MAX_PROBLEMS} problems)")
        raise StackFileError(*problems)


def _children(node: yaml.Node) -> list[yaml.Node]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_scalar(node: yaml.ScalarNode, path: tuple[str | int, ...], loader: Any, fail: Any) -> None:
    tag = node.tag
    if tag not in _PLAIN_SCALARS:
        fail(node, path, _NOT_PLAIN.get(tag, f"the tag {tag} is not allowed in a stack file"))
        return
    if tag == _TAG + "str":
        if _SURROGATE.search(node.value):
            fail(node, path, "holds an unpaired surrogate (\\uD800-\\uDFFF): not valid Unicode")
        return
    kind = tag[len(_TAG):]
    if tag == _TAG + "int":
        digits = sum(c.isdigit() for c in node.value)
        if digits > MAX_INT_DIGITS:
            fail(node, path, f"a number of {digits:,} digits is too long (at most {MAX_INT_DIGITS})")
            return
    try:
        value = {"int": loader.construct_yaml_int, "float": loader.construct_yaml_float,
                 "bool": loader.construct_yaml_bool, "null": loader.construct_yaml_null}[kind](node)
    except (ValueError, KeyError, TypeError):
        fail(node, path, f"{_show_scalar(node.value)} is not a valid {kind}")
        return
    if kind == "int" and abs(value) >= 10**MAX_INT_DIGITS:
        fail(node, path, f"{_show_scalar(node.value)} is too large (more than {MAX_INT_DIGITS} digits)")
    elif kind == "float" and (value != value or value in (float("inf"), float("-inf"))):
        fail(node, path, f"{_show_scalar(node.value)} is not a finite number")


def _show_scalar(text: str, width: int = 40) -> str:
    if len(text) > width:
        text = text[:width] + "…"
    return text if text.isprintable() and text.strip() == text and text else json.dumps(text)


# ---------------------------------------------------------------------------------------------
# Stack files, read as the CLI reads them
# ---------------------------------------------------------------------------------------------


def check_stack_name(name: str) -> str:
    """`name` if it is a plain stack name (Pulumi.<name>.yaml in the project); StackFileError otherwise."""
    if (not isinstance(name, str) or len(name) > MAX_STACK_NAME or not _STACK_NAME.fullmatch(name)):
        shown = json.dumps(name) if isinstance(name, str) else repr(name)
        raise StackFileError(f"stack name {shown:.120}: must be a plain name of letters, digits, '-', '_' and '.', "
                             f"not starting with '.', at most {MAX_STACK_NAME} characters")
    return name


def stack_name(text: str) -> str:
    """argparse `type=` for a stack name argument: a plain name, or a usage error (exit 2)."""
    import argparse

    try:
        return check_stack_name(text)
    except StackFileError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_project_dir(project_dir: Path) -> Path:
    """`project_dir` if it is a directory with a Pulumi.yaml; StackFileError otherwise."""
    if not project_dir.is_dir():
        why = "is not a directory" if project_dir.exists() else "no such directory"
        raise StackFileError(f"project directory {project_dir}: {why}")
    if not (project_dir / "Pulumi.yaml").exists():
        raise StackFileError(f"project directory {project_dir}: no Pulumi.yaml here (not a Pulumi project)")
    return project_dir


def _project(project_dir: Path) -> dict[str, Any]:
    check_project_dir(project_dir)
    document = load_yaml_file(project_dir / "Pulumi.yaml", "Pulumi.yaml")
    if not isinstance(document, dict) or not isinstance(document.get("name"), str) or not document["name"]:
        raise StackFileError("Pulumi.yaml: expected a mapping with the project's 'name'")
    if not isinstance(document.get("config") or {}, dict):
        raise StackFileError("Pulumi.yaml: config: must be a mapping")
    return document


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return _project(project_dir)["name"]


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    names = (p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
    return sorted(n for n in names if _STACK_NAME.fullmatch(n))


def cli_string(value: Any) -> str:
    """A config value as the CLI hands it to the program: JSON text for structured values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def stack_settings(stack: str, project_dir: Path = PROJECT_DIR,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack's config as structured values: Pulumi.yaml defaults, the stack file, overrides.

    Raises StackFileError (one line per problem) for a stack name that is not a plain name, a
    project directory without Pulumi.yaml, and a stack file that is missing, not a regular
    file, too large, not UTF-8, not YAML or not made of plain values (see load_yaml_file).
    """
    check_stack_name(stack)
    project = _project(project_dir)
    name = project["name"]
    settings: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            settings[full] = spec["default"]
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists() and not path.is_symlink():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackFileError(f"no stack file {path.name} (stacks here: {known})")
    document = load_yaml_file(path) or {}
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config' mapping")
    given: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value and len(value) == 1:
            value = "[secret]"  # ciphertext: only the CLI can decrypt it
        full = key if ":" in key else f"{name}:{key}"
        if full in given:
            raise StackFileError(f"{path.name}: config.{key}: sets {full} again (also set as config.{given[full]})")
        given[full] = key
        settings[full] = value
    settings.update(overrides or {})
    return settings
