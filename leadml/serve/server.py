"""Run the app under uvicorn: what ``leadml serve`` calls once the model is loaded."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from leadml.core.config import PipelineConfig
from leadml.core.errors import ConfigError

__all__ = ["serve"]


def serve(
    config: PipelineConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_uri: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    as_of: object | None = None,
    ready: Callable[[str, Any], None] | None = None,
) -> None:
    """Load the model, open the store, and serve until interrupted (SIGINT / SIGTERM stop it cleanly).

    ``ready(url, app)`` is called once the app is built, before uvicorn listens (the CLI prints the URL).

    Raises:
        ConfigError: a port outside 1-65535.
        ModelError: the model cannot be loaded.
    """
    try:
        import uvicorn

        from leadml.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(f"leadml serve needs fastapi, uvicorn and prometheus_client ({exc}); "
                          "install them with: pip install 'leadml[serve]'") from exc  # fmt: skip
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    app = create_app(config, model_uri=model_uri, store=store, as_of=as_of)
    if ready is not None:
        ready(f"http://{host}:{port}/", app)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
