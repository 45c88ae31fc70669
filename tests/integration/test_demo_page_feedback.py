"""Feedback from the demo page in a real headless Chromium against the real server: after a
prediction a person presses the digit they drew; the page sends it to POST /feedback with the
key of its API-key field and the prediction's X-Request-ID, shows the running accuracy it gets
back, and says in words what went wrong otherwise. With feedback off the controls say so."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect

from serving.access.keys import add_key
from serving.feedback.record import SCHEMA_FILE
from tests.integration.conftest import RunningServer, start_server, stop_server
from tests.integration.demo_browser import (
    ONE,
    SEVEN,
    VERSION,
    checked_page,
    demo_server,
    draw,
    headless_chromium,
    open_demo,
)
from tests.integration.feedback_client import records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SCHEMA = json.loads(SCHEMA_FILE.read_text())
ERROR = re.compile(r"\bis-error\b")
NOT_ENABLED = "Feedback is not enabled on this service"


@dataclass
class FeedbackServer:
    """A 1-worker server with API keys, decision records and feedback on (no Redis)."""

    server: RunningServer
    labeller: str  # predict, explain, read and feedback
    viewer: str  # predict, explain and read: no feedback
    records: Path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from headless_chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from checked_page(browser)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The default server: DIGITS_FEEDBACK unset, i.e. off."""
    yield from demo_server(tmp_path_factory)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedbackServer]:
    directory = tmp_path_factory.mktemp("demo-feedback")
    keys = directory / "keys.jsonl"
    labeller = add_key(keys, "demo-labeller", ["predict", "explain", "read", "feedback"])
    viewer = add_key(keys, "demo-viewer", ["predict", "explain", "read"])
    env = {
        "DIGITS_AUTH": "api-key",
        "DIGITS_API_KEYS_FILE": str(keys),
        "DIGITS_DECISION_LOG_DIR": str(directory / "records"),
        "DIGITS_FEEDBACK": "on",
        "DIGITS_DEMO": "on",  # off by default with auth on
    }
    running = start_server(env, workers=1, log_dir=directory)
    yield FeedbackServer(running, labeller, viewer, directory / "records")
    stop_server(running)


def use_key(page: Page, server: RunningServer, key: str) -> str:
    """Open the page, enter ``key`` in its API-key field; return the model version."""
    page.goto(f"{server.base_url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.locator("#api-key").fill(key)
    page.locator("#api-key-use").click()
    expect(page.locator("#model-version")).to_have_text(VERSION)
    return page.locator("#model-version").inner_text()


def predict(page: Page, shape: list[tuple[float, float]], expected: str) -> str:
    """Clear, draw ``shape``, press Predict; return the X-Request-ID of the /predict answer."""
    page.locator("#clear").click()
    page.locator("#pad").scroll_into_view_if_needed()  # the digit buttons are further down
    draw(page, shape)
    with page.expect_response("**/predict") as answer:
        page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predicted-label")).to_have_text(expected)
    request_id = answer.value.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    return request_id


def decision_route(directory: Path, request_id: str) -> str | None:
    """The route of the decision record ``request_id`` names, once written (within
    DIGITS_DECISION_FLUSH_SECONDS); None if it is not written within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for record in records(directory, "decisions"):
            if record["request_id"] == request_id:
                return str(record["route"])
        time.sleep(0.1)
    return None


def digit(page: Page, value: int) -> Locator:
    return page.get_by_role("button", name=f"It was {value}", exact=True)


def test_the_true_digit_is_recorded_with_the_request_id_and_the_accuracy_shown(
    page: Page, labelled: FeedbackServer
) -> None:
    version = use_key(page, labelled.server, labelled.labeller)
    feedback_on = page.locator('meta[name="digits-feedback"]').get_attribute("content")
    assert feedback_on == "on"
    expect(digit(page, 7)).to_be_disabled()  # nothing to label yet
    expect(page.locator("#feedback-help")).to_contain_text("After a prediction")

    seven = predict(page, SEVEN, "7")
    expect(digit(page, 7)).to_be_enabled()
    digit(page, 7).click()
    status, accuracy = page.locator("#feedback-status"), page.locator("#live-accuracy")
    expect(status).to_have_text("Recorded: it was 7, so the model was right. Thank you.")
    expect(accuracy).to_have_text(
        f"Live accuracy of model {version}: 1 of 1 labelled rows right (100.0 %), "
        "counted by the worker that answered (no shared index)."
    )
    expect(digit(page, 7)).to_have_attribute("aria-pressed", "true")
    expect(digit(page, 3)).to_have_attribute("aria-pressed", "false")

    (record,) = records(labelled.records, "feedback")
    jsonschema.validate(record, SCHEMA)
    assert record["request_id"] == seven
    assert (record["labels"], record["predicted"], record["matched"]) == ([7], [7], True)
    assert (record["model_version"], record["client_id"]) == (version, "demo-labeller")
    assert decision_route(labelled.records, seven) == "/predict"  # the prediction's decision

    digit(page, 7).click()  # the same label again: idempotent, nothing written
    expect(status).to_contain_text("Already recorded: this prediction was labelled 7 before")
    digit(page, 3).click()  # a different label for the same row: 409, shown in words
    expect(status).to_contain_text("already has a different true label (HTTP 409")
    expect(status).to_have_class(ERROR)
    expect(digit(page, 7)).to_have_attribute("aria-pressed", "true")
    assert len(records(labelled.records, "feedback")) == 1

    one = predict(page, ONE, "1")
    expect(digit(page, 7)).to_have_attribute("aria-pressed", "false")
    expect(status).to_be_empty()
    digit(page, 4).focus()  # the keyboard works too: a wrong label this time
    page.keyboard.press("Enter")
    expect(status).to_have_text("Recorded: it was 4, so the model was wrong. Thank you.")
    expect(status).not_to_have_class(ERROR)
    expect(accuracy).to_contain_text(": 1 of 2 labelled rows right (50.0 %)")
    first, second = records(labelled.records, "feedback")
    assert first == record
    assert (second["request_id"], second["labels"], second["predicted"]) == (one, [4], [1])

    page.locator("#pad").scroll_into_view_if_needed()
    draw(page, [(0.1, 0.9), (0.2, 0.9)])  # a changed drawing is not the labelled prediction
    expect(digit(page, 4)).to_be_disabled()
    expect(page.locator("#feedback-help")).to_contain_text("The input changed")
    expect(page.locator("#alert")).to_be_empty()


def test_a_key_without_the_feedback_scope_is_told_so(page: Page, labelled: FeedbackServer) -> None:
    use_key(page, labelled.server, labelled.viewer)
    request_id = predict(page, SEVEN, "7")
    digit(page, 7).click()
    status = page.locator("#feedback-status")
    expect(status).to_contain_text("This API key may not send feedback (HTTP 403)")
    expect(status).to_contain_text("lacks the 'feedback' scope")
    expect(status).to_have_class(ERROR)
    expect(page.locator("#alert")).to_be_empty()  # the prediction itself was fine
    assert request_id not in {r["request_id"] for r in records(labelled.records, "feedback")}


@pytest.mark.parametrize(
    ("status", "reason", "shown"),
    [
        (404, "unknown_request", "does not know this prediction (HTTP 404, unknown_request)"),
        (429, "rate_limited", "Too many requests (HTTP 429)"),
        (503, "feedback_not_stored", "not stored (HTTP 503, feedback_not_stored)"),
        (401, "missing_credentials", "Sending feedback needs a valid API key (HTTP 401)"),
    ],
)
def test_each_error_answer_is_shown_in_words(
    page: Page, labelled: FeedbackServer, status: int, reason: str, shown: str
) -> None:
    use_key(page, labelled.server, labelled.labeller)
    predict(page, SEVEN, "7")
    body = {"status": status, "reason": reason, "message": f"the {reason} message",
            "location": None, "request_id": "00ff"}  # fmt: skip
    page.route(
        "**/feedback",
        lambda route: route.fulfill(status=status, json=body, headers={"retry-after": "1"}),
    )
    digit(page, 2).click()
    message = page.locator("#feedback-status")
    expect(message).to_contain_text(shown)
    expect(message).to_contain_text(f"The service said: the {reason} message. Request id: 00ff.")
    expect(message).to_have_class(ERROR)
    expect(digit(page, 2)).to_be_enabled()  # send it again once the cause is gone
    expect(digit(page, 2)).to_have_attribute("aria-pressed", "false")


def test_a_missing_route_says_feedback_is_not_enabled(page: Page, labelled: FeedbackServer) -> None:
    """A page whose service lost the route (restarted with DIGITS_FEEDBACK=off)."""
    use_key(page, labelled.server, labelled.labeller)
    predict(page, SEVEN, "7")
    not_found = {"status": 404, "reason": "not_found", "message": "Not Found",
                 "location": None, "request_id": "00ff"}  # fmt: skip
    page.route("**/feedback", lambda route: route.fulfill(status=404, json=not_found))
    digit(page, 7).click()
    expect(page.locator("#feedback-status")).to_contain_text(NOT_ENABLED)
    expect(digit(page, 7)).to_be_disabled()
    expect(page.locator("#feedback-status")).to_be_focused()  # not dropped to <body>
    predict(page, ONE, "1")  # predictions go on; the controls stay off
    expect(digit(page, 1)).to_be_disabled()


def test_with_feedback_off_the_controls_say_so_and_the_page_works(
    page: Page, plain: RunningServer
) -> None:
    sent: list[str] = []

    def note(request: Request) -> None:
        sent.append(request.url)

    page.on("request", note)
    open_demo(page, plain)
    assert page.locator('meta[name="digits-feedback"]').get_attribute("content") == "off"
    help_text = page.locator("#feedback-help")
    expect(help_text).to_contain_text(NOT_ENABLED)
    buttons = page.locator("#feedback-digits .digit-button")
    expect(buttons).to_have_count(10)
    for index in range(10):
        expect(buttons.nth(index)).to_be_disabled()
    predict(page, SEVEN, "7")
    expect(page.locator("#result-summary")).to_contain_text("Predicted digit 7")
    expect(page.locator("#heatmap .heat-cell")).to_have_count(64)
    expect(digit(page, 7)).to_be_disabled()
    expect(help_text).to_contain_text(NOT_ENABLED)
    expect(page.locator("#alert")).to_be_empty()
    assert [url for url in sent if "/predict" in url]
    assert not [url for url in sent if "/feedback" in url]
