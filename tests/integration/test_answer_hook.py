"""The observe step's answer hook: how later steps (decision records) learn of an answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serving.http.chain import compose
from serving.http.observe import ANSWERED, observe
from tests.integration.asgi import service_client


class Hook:
    def __init__(self, sent: list[Any]) -> None:
        self.sent = sent
        self.calls: list[tuple[int, float, int]] = []

    def answered(self, status: int, seconds: float) -> None:
        self.calls.append((status, seconds, len(self.sent)))  # messages already sent


def run(end: Any) -> tuple[Hook, list[Any], BaseException | None]:
    """``end`` behind the observe step, with a hook set as a later step sets it."""
    sent: list[Any] = []
    hook = Hook(sent)

    async def later_step(scope: Any, receive: Any, send: Any) -> None:
        scope[ANSWERED] = hook
        await end(scope, receive, send)

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    scope: Any = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    with service_client() as client:
        chained: Any = compose(client.app, [observe], later_step)
        try:
            asyncio.run(chained(scope, receive, send))
        except RuntimeError as exc:
            return hook, sent, exc
    return hook, sent, None


def test_the_hook_is_called_once_before_the_last_body_byte_is_sent() -> None:
    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})

    hook, sent, error = run(answer)
    assert error is None
    assert len(sent) == 3
    ((status, seconds, before),) = hook.calls
    assert (status, before) == (201, 2)  # the last body message was not sent yet
    assert 0 < seconds < 60


@pytest.mark.parametrize("sent_before_failing", [0, 1, 2])
def test_an_incomplete_answer_calls_no_hook(sent_before_failing: int) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        messages = [
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.body", "body": b"a", "more_body": True},
        ]
        for message in messages[:sent_before_failing]:
            await send(message)
        raise RuntimeError("the answer broke off")

    hook, sent, error = run(failing)
    assert isinstance(error, RuntimeError)
    assert len(sent) == sent_before_failing
    assert hook.calls == []
