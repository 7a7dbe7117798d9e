"""leadml's wheel built in the background (model_env.start_wheel_build): the model still gets it, built once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from leadml.core.errors import ModelError
from leadml.modeling import model_env


class FakeBuilds:
    """pip's builds, faked: each records its cache and thread, then waits for ``release``."""

    def __init__(self) -> None:
        self.done: list[tuple[Path, str]] = []
        self.release = threading.Event()

    def __call__(self, root: Path, cache: Path) -> Path:
        self.done.append((cache, threading.current_thread().name))
        assert self.release.wait(30)
        if cache.name == "offline":
            raise ModelError("could not build leadml's wheel (offline)")
        wheel = cache / f"{model_env.__version__}-{model_env.source_digest(root)}" / model_env._wheel_name()
        wheel.parent.mkdir(parents=True, exist_ok=True)
        wheel.write_bytes(b"wheel")
        return wheel


@pytest.fixture
def builds(monkeypatch) -> FakeBuilds:
    fake = FakeBuilds()
    monkeypatch.setattr(model_env, "_built_wheel", fake)
    monkeypatch.setattr(model_env, "_building", {})
    return fake


def test_a_started_build_is_what_the_model_gets_and_is_not_built_twice(builds, tmp_path):
    cache = tmp_path / "cache"
    model_env.start_wheel_build(cache)
    model_env.start_wheel_build(cache)  # a second start joins the first
    builds.release.set()
    wheel = model_env.leadml_wheel(cache)  # waits for the background build
    assert wheel is not None and wheel.read_bytes() == b"wheel"
    assert builds.done == [(cache, "leadml-wheel-build")]  # in the background, once
    model_env.start_wheel_build(cache)  # the wheel is in the cache: nothing starts
    assert builds.done == [(cache, "leadml-wheel-build")] and not model_env._building


def test_a_background_build_that_fails_is_warned_when_the_model_asks_for_it(builds, tmp_path):
    model_env.start_wheel_build(tmp_path / "offline")
    builds.release.set()
    with pytest.warns(UserWarning, match=r"could not build leadml's wheel \(offline\); the model is logged without"):
        assert model_env.leadml_wheel(tmp_path / "offline") is None
    assert [thread for _, thread in builds.done] == ["leadml-wheel-build"]
