"""The README cannot go stale: every command of its "## Commands" block runs, in order, on simulated data."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Commands\n(.*?)(?=^## )", text, re.M | re.S).group(1)
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip().startswith("leadml ")]


def test_the_commands_block_lists_every_command():
    commands = {" ".join(c.split()[1:3]) if c.split()[1] == "rules" else c.split()[1] for c in readme_commands()}
    assert {
        "simulate",
        "validate",
        "features",
        "trainset",
        "rules score",
        "rules learn",
        "train",
        "promote",
        "score",
        "monitor",
        "report",
        "funnel",
        "demo",
        "history",
        "sla",
        "explain",
    } <= commands


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    (tmp_path / "pipelines").symlink_to(REPO / "pipelines")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("leadml", path=env["PATH"]), "the leadml script is not installed next to python"
    for command in readme_commands():
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stderr[-2000:]}"
    # the demo's sales report shows the three parts of issue 10: sub-scores, hand-offs, history
    sales = (tmp_path / "leadml-demo" / "reports" / "sales.html").read_text()
    assert re.search(r">[ABC][123]</td>", sales), "no grid tier in the demo's sales report"
    assert "Call within 24 h:" in sales and "Send the case-study e-mail series within 72 h" in sales
    assert "Warming up: biggest score rises in 7 days" in sales and "Stuck: MQLs" in sales
    assert sales.count("<polyline") >= 50  # the top leads' score over time


def _config_keys(model, prefix: str = ""):
    """Every key path of the pipeline config (``mql.tiers[].action`` for the keys of list items)."""
    import typing

    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        path, annotation = f"{prefix}{name}", field.annotation
        args = typing.get_args(annotation)
        optional = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)] if type(None) in args else []
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _config_keys(annotation, path + ".")
        elif optional:  # a section that may be left out (or, like data.leads, written as a path alone)
            yield path
            yield from _config_keys(optional[0], path + ".")
        elif (
            typing.get_origin(annotation) is list
            and args
            and isinstance(args[0], type)
            and issubclass(args[0], BaseModel)
        ):
            yield path
            yield from _config_keys(args[0], path + "[].")
        else:
            yield path


def test_the_config_reference_names_every_key():
    from leadml.core.config import PipelineConfig

    text = (REPO / "README.md").read_text()
    keys = list(_config_keys(PipelineConfig))
    assert len(keys) > 90 and "models.lightgbm.num_leaves" in keys and "mql.tiers[].within_hours" in keys
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"README's config reference lacks {missing}"
