"""`leadml --version` and `--help` load none of the heavy libraries: they answer in a fraction of a second.

Each case runs in a fresh interpreter (this one has imported them all) and lists the heavy modules
``sys.modules`` holds once the command has answered. Time itself is measured by scripts
(benchmarks/README.md), not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("mlflow", "pyspark", "lightgbm", "shap", "matplotlib", "sklearn", "pandas", "numpy", "pyarrow")

PROBE = """
import contextlib, io, json, sys
from leadml.cli.app import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
print(json.dumps({"code": code, "out": out.getvalue(), "heavy": heavy}))
""".replace("HEAVY", repr(HEAVY))


def _loaded_by(*args: str) -> dict:
    """The exit code, the output and the heavy libraries loaded of ``leadml ARGS`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["demo", "--help"], ["train", "--help"]],
                         ids=" ".join)  # fmt: skip
def test_version_and_help_import_no_heavy_library(args):
    loaded = _loaded_by(*args)
    assert loaded["code"] == 0
    assert loaded["out"].strip()  # it answered: the version, or the help
    assert loaded["heavy"] == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: a command that reads a table has pandas loaded when it answers."""
    loaded = _loaded_by("validate", "--leads", "no-such-file.csv")
    assert loaded["code"] == 1 and "pandas" in loaded["heavy"]
