"""Reading the YAML files leadml takes (pipelines, rule sets): safe, strict about keys, bounded in size.

PyYAML's ``safe_load`` builds no objects, but it accepts two things a config file should not have:
a key written twice in one mapping (the last silently wins, so a setting the user sees is not the
one in force) and aliases that expand a few hundred bytes into millions of values (an "alias
bomb": the values are shared, but everything that walks them, such as an error message, expands
them). Both are refused here with the file and the line, before any value is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from leadml.core.errors import ConfigError

__all__ = ["MAX_VALUES", "load_yaml", "yaml_problem"]

MAX_VALUES = 100_000  # values of a file with its aliases expanded; a pipeline has a few hundred


def yaml_problem(exc: Exception) -> str:
    """PyYAML's error in one line: where and what ("not valid YAML at line 2, column 1: ...").

    PyYAML's own text quotes the source line with a caret under it: several lines, which the CLI
    prints as one error line each.
    """
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML{at}: {' '.join(str(problem).split())}"


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias expanded (shared nodes counted each time)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_VALUES + 1  # a node that contains itself (a recursive alias) is too large
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_VALUES + 1)
    return sizes[id(node)]


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


def load_yaml(text: str, source: str) -> Any:
    """The value of a YAML document, or a :class:`ConfigError` naming ``source``.

    Raises:
        ConfigError: not valid YAML (one line, with the line and column), a key written twice in
            one mapping, or more than :data:`MAX_VALUES` values once aliases are expanded.

    Example:
        >>> load_yaml("name: demo\\nsnapshots: {horizon_days: 90}\\n", "p.yaml")
        {'name': 'demo', 'snapshots': {'horizon_days': 90}}
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_VALUES:
            raise ConfigError(
                f"{source}: the YAML expands to more than {MAX_VALUES:,} values through its aliases "
                "(*name); a config file needs no such size: write the values out"
            )
        duplicate = _duplicate_key(node, set())
        if duplicate:
            raise ConfigError(f"{source}: {duplicate}; keep one")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {yaml_problem(exc)}") from exc
    finally:
        loader.dispose()
