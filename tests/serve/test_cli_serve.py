"""``leadml serve`` on the command line: usage errors in one line (exit 2), a missing model in one line (exit 1)."""

from __future__ import annotations

import subprocess
import sys


def leadml(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leadml", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_bad_port_is_a_usage_error(tmp_path):
    (tmp_path / "p.yaml").write_text("name: p\n")
    done = leadml("serve", "p.yaml", "--port", "70000", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--port" in done.stderr and "70000" in done.stderr


def test_a_missing_model_is_one_line(tmp_path):
    (tmp_path / "p.yaml").write_text("name: p\n")
    done = leadml("serve", "p.yaml", "--model", str(tmp_path / "nothing"), "--port", "8765", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "no such model folder" in done.stderr
    assert not (tmp_path / "serve").exists()  # nothing opened before the model loaded
