"""The YAML files leadml reads: a key written twice and an alias bomb are refused, in one line, cheaply."""

from __future__ import annotations

import resource
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from leadml.cli.app import main
from leadml.core.config import load_pipeline
from leadml.core.errors import ConfigError
from leadml.core.yaml_files import MAX_VALUES, load_yaml
from leadml.rules.ruleset import RuleSet

# 9 levels of 9 aliases: 387 million strings once expanded, under 500 bytes on disk
BOMB = "name: bomb\n" + "".join(
    f"l{level}: &l{level} [{', '.join([f'*l{level - 1}' if level else 'lol'] * 9)}]\n" for level in range(9)
)


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: demo\nsnapshots:\n  horizon_days: 90\n  every_days: 7\n  horizon_days: 30\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert str(caught.value) == f"{path}: key 'horizon_days' is written twice (lines 3 and 5); keep one"


def test_a_rules_file_with_a_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nrules:\n  - {name: Form, event: form_submit, points: 20, points: 30}\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: key 'points' is written twice \(lines 3 and 3\); keep one"):
        RuleSet.load(path)


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert time.perf_counter() - started < 5  # counted over the shared nodes, not expanded
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: no expansion in memory
    assert str(caught.value) == (
        f"{path}: the YAML expands to more than {MAX_VALUES:,} values through its aliases (*name); "
        "a config file needs no such size: write the values out"
    )


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(BOMB)
    assert main(["trainset", str(path), "--out", str(tmp_path / "t.parquet")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 300 and "expands to more than" in err


def test_a_few_aliases_are_fine():
    text = "base: &base {num_leaves: 7}\nlightgbm: *base\nmerged: {<<: *base, learning_rate: 0.1}\n"
    assert load_yaml(text, "p.yaml") == {
        "base": {"num_leaves": 7},
        "lightgbm": {"num_leaves": 7},
        "merged": {"num_leaves": 7, "learning_rate": 0.1},
    }


def test_a_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match="expands to more than"):
        load_yaml("a: &a [1, *a]\n", "p.yaml")


def test_an_empty_file_is_none():
    assert load_yaml("", "p.yaml") is None


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(yaml_values)
def test_what_pyyaml_writes_it_reads_back_the_same(value):
    assert load_yaml(yaml.safe_dump(value), "p.yaml") == value


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:&*-[]{},\n '\"#!|>")), max_size=60))
def test_any_text_loads_or_is_one_config_error(text):
    try:
        load_yaml(text, "p.yaml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("p.yaml: ")


# -- size and depth ------------------------------------------------------------------------------
def test_a_file_over_one_megabyte_is_refused_in_one_line(tmp_path, capsys):
    from leadml.core.yaml_files import MAX_BYTES

    path = tmp_path / "r.yaml"
    path.write_text("name: r\n" + "# padding\n" * 150_000)  # 1.5 MB of comments
    size = path.stat().st_size
    expected = (
        f"{path}: the file is {size:,} bytes (1.4 MB), more than the {MAX_BYTES:,} bytes a pipeline or rules "
        "file may have; is it the right file?"
    )
    with pytest.raises(ConfigError) as caught:
        RuleSet.load(path)
    assert str(caught.value) == expected
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert str(caught.value) == expected
    assert main(["trainset", str(path), "--out", str(tmp_path / "t.parquet")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {expected}"


def test_a_rules_file_that_is_not_utf8_is_one_config_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: r\nrules:\n  - {name: Caf\xe9, field: x, equals: 1, points: 5}\n")
    with pytest.raises(ConfigError) as caught:
        RuleSet.load(path)
    assert str(caught.value) == f"{path}: byte 0xe9 at offset 29 (line 3) is not UTF-8 text; save the file as UTF-8"


def test_nesting_deeper_than_the_limit_is_refused_without_a_recursion_error():
    from leadml.core.yaml_files import MAX_DEPTH

    assert MAX_DEPTH == 32
    for depth in (33, 1_000, 100_000):  # PyYAML alone fails with a RecursionError near 330
        with pytest.raises(ConfigError) as caught:
            load_yaml("[" * depth + "]" * depth, "p.yaml")
        assert str(caught.value) == (
            "p.yaml: the YAML nests lists and mappings more than 32 levels deep (line 1); "
            "a config file needs no such depth: flatten it"
        )
    chain = "a: &a " + "[" * 20 + "1" + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n"  # 21 written, 41 used
    with pytest.raises(ConfigError, match=r"p\.yaml: the YAML nests .* more than 32 levels deep through its aliases"):
        load_yaml(chain, "p.yaml")


def nested(depth: int, mapping: st.SearchStrategy) -> st.SearchStrategy:
    """A value whose lists and mappings nest exactly ``depth`` deep (each level a list or a mapping)."""
    value: st.SearchStrategy = st.integers(0, 9)
    for _ in range(depth):
        value = value.flatmap(lambda inner: mapping.map(lambda as_map: {"k": inner} if as_map else [inner]))
    return value


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(1, 48).flatmap(lambda depth: st.tuples(st.just(depth), nested(depth, st.booleans()))),
       st.booleans())  # fmt: skip
def test_any_nesting_within_the_limit_loads_and_deeper_is_refused(case, flow):
    from leadml.core.yaml_files import MAX_DEPTH

    depth, value = case
    text = yaml.safe_dump(value, default_flow_style=flow)
    if depth <= MAX_DEPTH:
        assert load_yaml(text, "p.yaml") == value
    else:
        with pytest.raises(ConfigError, match=rf"^p\.yaml: the YAML nests lists and mappings more than {MAX_DEPTH} "):
            load_yaml(text, "p.yaml")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(-6, 6), st.sampled_from(["x", "é", "€"]))
def test_text_up_to_the_byte_limit_loads_and_one_byte_more_is_refused(offset, letter):
    from leadml.core.yaml_files import MAX_BYTES

    head = "name: demo\n# "
    width = len(letter.encode())
    count = (MAX_BYTES - len(head) - 1) // width + offset  # the letters of a comment line
    text = head + letter * count + "\n"
    size = len(text.encode())
    if size <= MAX_BYTES:
        assert load_yaml(text, "p.yaml") == {"name": "demo"}
    else:
        with pytest.raises(ConfigError, match=rf"^p\.yaml: the file is {size:,} bytes \("):
            load_yaml(text, "p.yaml")
