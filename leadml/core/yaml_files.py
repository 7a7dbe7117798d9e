"""Reading the YAML files leadml takes (pipelines, rule sets): safe, strict about keys, bounded in size.

PyYAML's ``safe_load`` builds no objects, but it accepts two things a config file should not have:
a key written twice in one mapping (the last silently wins, so a setting the user sees is not the
one in force) and aliases that expand a few hundred bytes into millions of values (an "alias
bomb": the values are shared, but everything that walks them, such as an error message, expands
them). Both are refused here with the file and the line, before any value is built.

Two bounds keep every reader of the values safe as well: a file over :data:`MAX_BYTES` is refused
before it is read (a config is a few kB: a bigger file is the wrong file), and so is nesting deeper
than :data:`MAX_DEPTH` lists and mappings, aliases expanded (PyYAML and the validators walk the
values recursively; a thousand levels of ``[[[...]]]`` would end in a RecursionError).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from leadml.core.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "load_yaml", "read_yaml_file", "yaml_problem"]

MAX_VALUES = 100_000  # values of a file with its aliases expanded; a pipeline has a few hundred
MAX_BYTES = 1 << 20  # 1 MB: a pipeline or a rules file is a few kB
MAX_DEPTH = 32  # lists and mappings inside one another; a pipeline nests five deep


def yaml_problem(exc: Exception) -> str:
    """PyYAML's error in one line: where and what ("not valid YAML at line 2, column 1: ...").

    PyYAML's own text quotes the source line with a caret under it: several lines, which the CLI
    prints as one error line each.
    """
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML{at}: {' '.join(str(problem).split())}"


def _too_large(source: str, size: int) -> ConfigError:
    return ConfigError(
        f"{source}: the file is {size:,} bytes ({size / 2**20:.1f} MB), more than the {MAX_BYTES:,} bytes "
        "a pipeline or rules file may have; is it the right file?"
    )


def _too_deep(source: str, where: str) -> ConfigError:
    return ConfigError(
        f"{source}: the YAML nests lists and mappings more than {MAX_DEPTH} levels deep {where}; "
        "a config file needs no such depth: flatten it"
    )


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_DEPTH` as it composes (no recursion error)."""

    def __init__(self, text: str, source: str):
        super().__init__(text)
        self.source, self.depth = source, 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        nests = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
        if nests:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.source, f"(line {event.start_mark.line + 1})")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= nests


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded(root: yaml.Node) -> tuple[int, int]:
    """How many values ``root`` holds and how deep it nests, every alias expanded (shared nodes
    counted each time), each capped one above its limit; a node inside itself (a recursive alias)
    is over both. Walked with a stack, not recursion, so that no depth breaks it."""
    over = (MAX_VALUES + 1, MAX_DEPTH + 1)
    done: dict[int, tuple[int, int]] = {}
    path: set[int] = set()  # the nodes whose children are being measured: the ancestors
    stack = [(root, False)]
    while stack:
        node, measured = stack.pop()
        if id(node) in done:
            continue
        children = _children(node)
        if not measured:
            stack.append((node, True))
            path.add(id(node))
            for child in children:
                if id(child) in path:
                    return over
                stack.append((child, False))
            continue
        path.discard(id(node))
        size = 1 + sum(done[id(child)][0] for child in children)
        depth = 1 + max((done[id(child)][1] for child in children), default=0) if _nests(node) else 0
        done[id(node)] = (min(size, over[0]), min(depth, over[1]))
    return done[id(root)]


def _nests(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode | yaml.SequenceNode)


def _duplicate_key(node: yaml.Node, seen: set[int]) -> str | None:
    """The first key written twice in one mapping, as 'KEY' at lines A and B; None when there is none."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in lines:
                    return f"key {key.value!r} is written twice (lines {lines[key.value]} and {line})"
                lines[key.value] = line
            found = _duplicate_key(value, seen)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, seen)
            if found:
                return found
    return None


def read_yaml_file(path: str | os.PathLike, what: str = "file") -> Any:
    """The value of a YAML file (see :func:`load_yaml`); a file over :data:`MAX_BYTES` is refused unread.

    ``what`` names the file in the errors of a file that cannot be read ("rules file not found").

    Raises:
        ConfigError: the file is missing, a folder, larger than :data:`MAX_BYTES`, not UTF-8 text,
            or refused by :func:`load_yaml`.
    """
    source = os.fspath(path)
    try:
        size = os.stat(source).st_size
        if size > MAX_BYTES:
            raise _too_large(source, size)
        with open(source, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # a file that grew since its size was taken is read no further
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: {what} not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{source}: is a folder, not a {what}") from exc
    if len(data) > MAX_BYTES:
        raise _too_large(source, os.stat(source).st_size)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) is not UTF-8 text; "
            "save the file as UTF-8"
        ) from exc
    return load_yaml(text, source)


def load_yaml(text: str, source: str) -> Any:
    """The value of a YAML document, or a :class:`ConfigError` naming ``source``.

    Raises:
        ConfigError: not valid YAML (one line, with the line and column), a key written twice in
            one mapping, more than :data:`MAX_VALUES` values once aliases are expanded, text of
            more than :data:`MAX_BYTES` bytes, or lists and mappings nested more than
            :data:`MAX_DEPTH` deep.

    Example:
        >>> load_yaml("name: demo\\nsnapshots: {horizon_days: 90}\\n", "p.yaml")
        {'name': 'demo', 'snapshots': {'horizon_days': 90}}
    """
    if len(text) * 4 > MAX_BYTES:  # a character is at most 4 bytes in UTF-8: shorter text is within bounds
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_BYTES:
            raise _too_large(source, size)
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size, depth = _expanded(node)
        if size > MAX_VALUES:
            raise ConfigError(
                f"{source}: the YAML expands to more than {MAX_VALUES:,} values through its aliases "
                "(*name); a config file needs no such size: write the values out"
            )
        if depth > MAX_DEPTH:
            raise _too_deep(source, "through its aliases (*name)")
        duplicate = _duplicate_key(node, set())
        if duplicate:
            raise ConfigError(f"{source}: {duplicate}; keep one")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {yaml_problem(exc)}") from exc
    finally:
        loader.dispose()
