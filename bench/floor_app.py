"""The raw server floor of ``make bench``: granian + uvloop serving an ASGI app that reads the
request body and answers a fixed JSON body, the shape and size of a one-row ``/predict``
answer. No routing, validation, model or metrics: what a request costs the server alone.

Run: ``python -m bench.floor_app --port 8000`` (granian with the options ``python -m
serving`` gives it: ASGI interface, uvloop, HTTP/1.1 only, 1 worker, no access log).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = (
    b'{"model_version":"0123456789ab","labels":[8],"probabilities":[[0.0001,0.0002,0.0011,'
    b"0.0023,0.0,0.0004,0.0001,0.0,0.9947,0.0011]],"
    b'"classes":[0,1,2,3,4,5,6,7,8,9],"ood":[false],"ood_score":[0.42]}'
)
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
ANSWER = {"type": "http.response.body", "body": BODY, "more_body": False}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with :data:`BODY` once its body is read."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    while (await receive()).get("more_body", False):
        pass
    await send(START)
    await send(ANSWER)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="granian + uvloop fixed-JSON floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    Granian(
        "bench.floor_app:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=1,
        log_level="warning",  # type: ignore[arg-type]
        log_access=False,
        http=HTTPModes.http1,
    ).serve()


if __name__ == "__main__":
    main()
