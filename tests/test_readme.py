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
    assert {"simulate", "validate", "features", "trainset", "rules score", "rules learn", "train", "promote",
            "score", "monitor", "report", "funnel", "demo", "history", "explain"} <= commands


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    (tmp_path / "pipelines").symlink_to(REPO / "pipelines")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("leadml", path=env["PATH"]), "the leadml script is not installed next to python"
    for command in readme_commands():
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stderr[-2000:]}"
