"""What a logged model needs to load anywhere: leadml's own wheel and the pinned requirements.

A leadml pyfunc is a pickle of leadml's classes, so a process that loads it must import leadml.
The model therefore carries leadml as a wheel among its artifacts (``artifacts/leadml-V-py3-none-any.whl``)
and its ``requirements.txt`` names that file by a path relative to the model folder, beside
leadml's dependencies pinned to the versions installed at training. ``mlflow models
predict/serve --env-manager virtualenv`` and ``build-docker`` install the requirements from a
copy of the model folder, so the path resolves there; by hand, run
``pip install -r requirements.txt`` from inside the model folder.

The wheel is built from the source tree leadml is imported from (an editable install or a
checkout) with ``pip wheel --no-deps``, once per version and content of the sources: it is kept in
``LEADML_WHEEL_CACHE`` (default ``~/.cache/leadml/wheels``), so a training rebuilds it only after
the code changed. Where leadml was installed from a wheel or an index there is no source tree;
the requirement is then ``leadml==VERSION``, which an index serving leadml resolves. So it is when
the build fails (offline, say: pip fetches setuptools for it), with a warning: training goes on.

The cold build costs pip ~6 s; :func:`start_wheel_build` starts it in a background thread when a
command knows it will log a model (``leadml train``, ``leadml demo``), so that it runs beside
the training rather than after it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import Future
from pathlib import Path

from leadml.core.errors import ModelError
from leadml.core.version import __version__

log = logging.getLogger("leadml.modeling.model_env")

WHEEL_ARTIFACT = "leadml_wheel"  # the key of the wheel in the pyfunc's artifacts (folder ``artifacts/``)
SOURCE_FILES = ("pyproject.toml", "README.md")  # beside the package: what the build reads
PACKAGE_SUFFIXES = (".py", ".html")  # the package's modules and its package data
_building: dict[Path, Future[Path]] = {}  # wheel cache folder -> the build start_wheel_build began
_building_lock = threading.Lock()


def source_tree() -> Path | None:
    """The folder holding ``pyproject.toml`` and the ``leadml`` package imported now (None if installed)."""
    root = Path(__file__).resolve().parents[2]
    if all((root / name).is_file() for name in SOURCE_FILES) and (root / "leadml" / "__init__.py").is_file():
        return root
    return None


def _package_files(root: Path) -> list[Path]:
    files = [p for p in (root / "leadml").rglob("*") if p.suffix in PACKAGE_SUFFIXES and "__pycache__" not in p.parts]
    return sorted(files)


def source_digest(root: Path) -> str:
    """A short hash of what the wheel is built from: same sources, same digest."""
    digest = hashlib.sha256()
    for path in [*(root / name for name in SOURCE_FILES), *_package_files(root)]:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def wheel_cache() -> Path:
    """Where built wheels are kept: ``LEADML_WHEEL_CACHE``, else ``$XDG_CACHE_HOME/leadml/wheels``."""
    configured = os.environ.get("LEADML_WHEEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "leadml" / "wheels"


def leadml_wheel(cache: Path | None = None) -> Path | None:
    """leadml's wheel for the sources imported now, built once per version and content.

    None when leadml is not imported from a source tree, or when pip could not build the wheel
    (offline, say: the build fetches setuptools); the latter is warned, with pip's last lines, and the
    model is logged without it (it then loads where leadml is installed).
    """
    root = source_tree()
    if root is None:
        log.info("leadml is installed, not imported from its sources: the model requires leadml==%s", __version__)
        return None
    cache = cache or wheel_cache()
    with _building_lock:
        started = _building.pop(cache, None)
    try:
        return started.result() if started is not None else _built_wheel(root, cache)
    except (ModelError, OSError, subprocess.SubprocessError) as exc:
        warnings.warn(f"{exc}; the model is logged without leadml's wheel and loads only where leadml "
                      f"{__version__} is installed", UserWarning, stacklevel=2)  # fmt: skip
        return None


def start_wheel_build(cache: Path | None = None) -> None:
    """Start building leadml's wheel in a background thread; the next :func:`leadml_wheel` waits for it.

    For a command that will log a model: the cold build (~6 s of pip, in its own process) then
    overlaps the training. Nothing starts where leadml is installed, or when the wheel is cached
    already; a failed build is warned by :func:`leadml_wheel`, as a build it runs itself.
    """
    root = source_tree()
    cache = cache or wheel_cache()
    if root is None or (cache / f"{__version__}-{source_digest(root)}" / _wheel_name()).is_file():
        return
    with _building_lock:
        if cache in _building:
            return
        started: Future[Path] = Future()
        _building[cache] = started

    def build() -> None:
        try:
            started.set_result(_built_wheel(root, cache))
        except BaseException as exc:  # handed to the caller of leadml_wheel, which warns
            started.set_exception(exc)

    # not a daemon: at exit the interpreter waits for the build, which cleans its temporary folder
    threading.Thread(target=build, name="leadml-wheel-build").start()


def _wheel_name() -> str:
    return f"leadml-{__version__}-py3-none-any.whl"


def _built_wheel(root: Path, cache: Path) -> Path:
    folder = cache / f"{__version__}-{source_digest(root)}"
    wheel = folder / _wheel_name()
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="leadml-wheel-") as tmp:
        source = Path(tmp) / "src"  # a copy: the build's build/ and egg-info stay out of the checkout
        for path in [*(root / name for name in SOURCE_FILES), *_package_files(root)]:
            target = source / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        log.info("building leadml's wheel for the model (once per version and sources) in %s", folder)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-input", "--quiet",
                   "--wheel-dir", str(Path(tmp) / "out"), str(source)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        built = sorted((Path(tmp) / "out").glob("leadml-*.whl"))
        if done.returncode != 0 or len(built) != 1:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise ModelError(f"could not build leadml's wheel to pack with the model (pip wheel {source}): {tail}")
        partial = folder / f".{wheel.name}.{os.getpid()}.tmp"
        shutil.copyfile(built[0], partial)
        os.replace(partial, wheel)  # another training building the same wheel writes the same file
    return wheel


def _dependencies(root: Path | None) -> list[str]:
    """leadml's runtime requirements (no extras) as its metadata, else its pyproject.toml, gives them."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        found = requires("leadml") or []
    except PackageNotFoundError:
        if root is None:
            return []
        import tomllib

        found = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    return [line for line in found if "extra ==" not in line]


def model_requirements(wheel: Path | None) -> list[str]:
    """The model's ``requirements.txt``: leadml's dependencies pinned as installed, then leadml itself
    (the wheel by its path in the model folder, or ``leadml==VERSION`` without a wheel)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    pinned = []
    for line in _dependencies(source_tree()):
        name = Requirement(line).name
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(line)  # not installed here: the range leadml asks for
    leadml = f"artifacts/{wheel.name}" if wheel is not None else f"leadml=={__version__}"
    return [*pinned, leadml]
