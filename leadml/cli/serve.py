"""What ``leadml serve`` prints: the URL and the routes, then uvicorn takes the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console


def run_serve(pipeline: Path, host: str, port: int, model: str | None, store: Path | None, as_of: str | None,
              console: Console) -> None:  # fmt: skip
    """Serve the pipeline's champion (or ``model``) at ``host:port`` until interrupted."""
    from leadml.core.config import load_pipeline
    from leadml.serve.server import serve
    from leadml.serve.store import store_path

    config = load_pipeline(pipeline)

    def ready(url: str, app: Any) -> None:
        loaded = app.state.service.scorer.loaded
        where = store or store_path(config)
        console.print(f"serving {config.name}: model {loaded.name} {loaded.version} ({loaded.uri}), store {where}",
                      markup=False)  # fmt: skip
        if as_of is not None:
            console.print(f"scores at the fixed instant {as_of} (a replay)", markup=False)
        console.print(f"listening on {url} (queue page {url}, POST {url}events, GET {url}metrics); Ctrl+C stops",
                      markup=False, soft_wrap=True)  # fmt: skip

    serve(config, host=host, port=port, model_uri=model, store=store, as_of=as_of, ready=ready)
