"""In-process CPU per request: the ASGI app called directly (no sockets, no server).

``python bench/request_cpu.py``: ``POST /predict`` and OIP infer with one flat row,
issued 1 or ``k`` at a time with ``asyncio.gather`` (``k`` > 1: requests share a model
call), best of 5 rounds of 4,000 requests, for both dispatches of the same app: the fast
dispatch of ``FAST`` handlers (production) and Litestar's own handler pipeline (the same
handlers with the ``FAST`` option removed). Prints a Markdown table; docs/performance.md
quotes it with the commit it was measured at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from serving.app import ServiceApp, create_app  # noqa: E402
from serving.http.chain import CHAIN, compose  # noqa: E402
from serving.http.dispatch import FAST, dispatcher  # noqa: E402
from serving.lineage.loading import load_model  # noqa: E402
from serving.settings import Settings  # noqa: E402
from serving.state import service_of  # noqa: E402

ROW = [float(i % 17) for i in range(64)]
BODIES = {
    "/predict": json.dumps({"samples": [ROW]}).encode(),
    "/v2/models/digits-classifier/infer": json.dumps(
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}
    ).encode(),
}


async def _one(app: Any, path: str, body: bytes) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Any] = []

    async def receive() -> Any:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # never disconnects

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{path}: status {sent[0]['status']}")


async def _per_request_us(app: Any, path: str, k: int, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n // k):
            await asyncio.gather(*[_one(app, path, BODIES[path]) for _ in range(k)])
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def _app(fast: bool) -> ServiceApp:
    app = create_app(Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), log_level="warning"))
    load_model(service_of(app))
    if not fast:
        for route in app.routes:
            for handler in getattr(route, "route_handlers", []):
                handler.opt.pop(FAST, None)
        app.chain = compose(app, CHAIN, dispatcher(app))
    return app


async def _main(k: int, n: int) -> None:
    apps = {"fast dispatch": _app(True), "Litestar pipeline": _app(False)}
    print("| request | k | " + " | ".join(apps) + " |")
    print("| --- | ---: |" + " ---: |" * len(apps))
    for path in BODIES:
        for concurrent in (1, k):
            cells = [
                f"{await _per_request_us(app, path, concurrent, n):.0f} µs" for app in apps.values()
            ]
            print(f"| `POST {path}` | {concurrent} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=8, help="concurrent requests (batched case)")
    parser.add_argument("-n", type=int, default=4000, help="requests per round")
    args = parser.parse_args()
    asyncio.run(_main(args.k, args.n))


if __name__ == "__main__":
    main()
