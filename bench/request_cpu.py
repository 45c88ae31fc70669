"""In-process CPU per request: the ASGI app called directly (no sockets, no server).

``python bench/request_cpu.py``: ``POST /predict`` and OIP infer with one flat row,
issued 1 or ``k`` at a time with ``asyncio.gather`` (``k`` > 1: requests share a model
call), best of 5 rounds of 4,000 requests, for both dispatches of the same app: the fast
dispatch of ``FAST`` handlers (production) and Litestar's own handler pipeline (the same
handlers with the ``FAST`` option removed). With ``--guards``: the open app against the
same app guarded as ``make bench`` guards it (API key on every request, a rate limit that
never refuses, decision records written; the encoder child's CPU is not counted). Prints a
Markdown table; docs/performance.md quotes it with the commit it was measured at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from serving.app import ServiceApp, create_app  # noqa: E402
from serving.http.chain import CHAIN, compose  # noqa: E402
from serving.http.dispatch import FAST, dispatcher  # noqa: E402
from serving.lineage.loading import load_model  # noqa: E402
from serving.settings import load_settings  # noqa: E402
from serving.state import service_of  # noqa: E402

ROW = [float(i % 17) for i in range(64)]
BODIES = {
    "/predict": json.dumps({"samples": [ROW]}).encode(),
    "/v2/models/digits-classifier/infer": json.dumps(
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}
    ).encode(),
}


async def _one(app: Any, path: str, body: bytes, authorization: bytes = b"") -> None:
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
            *([(b"authorization", authorization)] if authorization else []),
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


async def _per_request_us(app: Any, path: str, k: int, n: int, authorization: bytes = b"") -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n // k):
            await asyncio.gather(*[_one(app, path, BODIES[path], authorization) for _ in range(k)])
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def _app(fast: bool, guards: dict[str, str] | None = None) -> ServiceApp:
    """The app, open or with ``guards`` (DIGITS_* variables, read as the service reads them)."""
    env = {"DIGITS_LOCK_FILE": str(REPO_ROOT / "dvc.lock"), "DIGITS_LOG_LEVEL": "warning"}
    app = create_app(load_settings(env | (guards or {})))
    load_model(service_of(app))
    if not fast:
        for route in app.routes:
            for handler in getattr(route, "route_handlers", []):
                handler.opt.pop(FAST, None)
        app.chain = compose(app, CHAIN, dispatcher(app))
    return app


def _guarded(work: Path) -> tuple[dict[str, str], bytes]:
    """The variables ``make bench`` guards the service with, and a valid Authorization."""
    from bench.targets import GUARDED_SCOPES, guarded_env
    from serving.access.keys import add_key

    key_file = work / "keys.jsonl"
    token = add_key(key_file, "bench", GUARDED_SCOPES)
    return guarded_env(work, key_file), f"Bearer {token}".encode()


async def _main(k: int, n: int, guards: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="request-cpu-") as work:
        if guards:
            settings, authorization = _guarded(Path(work))
            apps = {"open": _app(True), "guarded": _app(True, settings)}
            auth = {"open": b"", "guarded": authorization}
        else:
            apps = {"fast dispatch": _app(True), "Litestar pipeline": _app(False)}
            auth = dict.fromkeys(apps, b"")
        await _table(apps, auth, k, n)
        for app in apps.values():  # the guarded app's decision writer: stop its thread
            for close in service_of(app).closers:
                close()


async def _table(apps: dict[str, ServiceApp], auth: dict[str, bytes], k: int, n: int) -> None:
    print("| request | k | " + " | ".join(apps) + " |")
    print("| --- | ---: |" + " ---: |" * len(apps))
    for path in BODIES:
        for concurrent in (1, k):
            cells = [
                f"{await _per_request_us(app, path, concurrent, n, auth[name]):.0f} µs"
                for name, app in apps.items()
            ]
            print(f"| `POST {path}` | {concurrent} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=8, help="concurrent requests (batched case)")
    parser.add_argument("-n", type=int, default=4000, help="requests per round")
    parser.add_argument(
        "--guards", action="store_true", help="open vs guarded (auth, rate limit, records)"
    )
    args = parser.parse_args()
    asyncio.run(_main(args.k, args.n, args.guards))


if __name__ == "__main__":
    main()
