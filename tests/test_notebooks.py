"""The notebooks run top to bottom on small data, in a fresh working folder, and are committed clean.

Each notebook is copied into ``tmp_path`` and executed there by nbclient with the ``python3`` kernel
(jupyter_client starts it with this interpreter, ``sys.executable``); any error in any cell fails
the test. MLflow goes to ``tmp_path`` (``MLFLOW_TRACKING_URI``), and so do IPython's
history and Jupyter's connection files. The real-data notebook skips, with the reason, when the
shared data folder is absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbclient  # in the dev extra: a missing one is an install error, not a reason to skip
import nbformat
import pytest

from tests.conftest import REPO, datasets_dir_or_skip

NOTEBOOKS = REPO / "notebooks"
EXPECTED = ("01-quickstart", "02-real-data-x-education", "03-retrain-on-closed-deals")

# what each notebook must leave in its working folder (a run that silently skipped a step fails)
WRITES = {
    "01-quickstart": ["runs/quickstart/pipeline.yaml", "runs/quickstart/scores.parquet",
                      "runs/quickstart/reports/model_card.html", "runs/quickstart/reports/sales.html"],
    "02-real-data-x-education": ["runs/x-education/reports/model_card.html"],
    "03-retrain-on-closed-deals": ["runs/retrain/pipeline.yaml", "runs/retrain/crm_export/outcomes.parquet"],
}  # fmt: skip


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def notebook_params() -> list:
    """One parameter per notebook; the real-data one carries the ``realdata`` mark."""
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.realdata] if "real-data" in p.stem else [])
            for p in notebook_paths()]  # fmt: skip


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """The kernel's working folder: MLflow, IPython's history and the connection files in tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / ".ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ".jupyter-runtime"))
    return tmp_path


def execute(notebook, folder: Path, timeout: int = 600):
    """Run every cell in ``folder`` with the python3 kernel; a failing cell raises CellExecutionError."""
    client = nbclient.NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    return client.execute()


def text_outputs(notebook) -> str:
    """All text the cells printed or displayed, joined (for checks on what the notebook showed)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_three_notebooks_are_there():
    assert [p.stem for p in notebook_paths()] == list(EXPECTED)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    dirty = [i for i, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]  # fmt: skip
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution count; clear them before committing"
    assert any(cell.cell_type == "markdown" for cell in notebook.cells)


def test_kernel_is_this_interpreter(kernel_env):
    """The python3 kernel runs in the environment of the tests (so it sees the installed leadml)."""
    notebook = nbformat.v4.new_notebook()
    source = "import json, sys; print(json.dumps([sys.executable, sys.prefix]))"
    notebook.cells.append(nbformat.v4.new_code_cell(source))
    executed = execute(notebook, kernel_env, timeout=120)
    executable, prefix = json.loads(executed.cells[0].outputs[0]["text"])
    assert (executable, prefix) == (sys.executable, sys.prefix)


@pytest.mark.slow
@pytest.mark.parametrize("path", notebook_params())
def test_notebook_runs(path, kernel_env):
    if "real-data" in path.stem:
        folder = datasets_dir_or_skip()
        if not (folder / "x_education_leads" / "Leads.csv").is_file():
            pytest.skip(f"X Education leads absent: {folder / 'x_education_leads' / 'Leads.csv'}")
    work = kernel_env
    (work / path.name).write_bytes(path.read_bytes())  # run the copy, as a user would run theirs
    notebook = nbformat.read(work / path.name, as_version=4)
    executed = execute(notebook, work)
    errors = [o for cell in executed.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    missing = [name for name in WRITES.get(path.stem, []) if not (work / name).is_file()]
    assert not missing, f"{path.name} did not write {missing}"
    shown = text_outputs(executed)
    assert "Traceback" not in shown
    if path.stem == "01-quickstart":
        assert "version 1 is the first champion" in shown
    if path.stem == "02-real-data-x-education":
        assert "suspected leakage, training stopped" in shown and "'Tags'" in shown
    if path.stem == "03-retrain-on-closed-deals":
        assert "version 2" in shown and "champion" in shown
    # the copy in tmp_path was run; the committed notebook is untouched (still without outputs)
    assert not any(c.get("outputs") for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_the_dev_install_opens_and_converts_notebooks():
    """The README's two ways to open a notebook work after `pip install -e ".[dev]"` (jupyter beside python)."""
    import subprocess

    jupyter = Path(sys.executable).with_name("jupyter")
    for command in (["lab", "--version"], ["nbconvert", "--version"]):
        done = subprocess.run([str(jupyter), *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr[-500:])
        assert done.stdout.strip()[:1].isdigit(), done.stdout
