"""The drawing demo page in a real headless Chromium against the real server: drawing with a
mouse, pen, touch or the keyboard gives the served prediction and its explanation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    expect,
)

from tests.integration.conftest import RunningServer
from tests.integration.demo_browser import (
    DIGIT,
    MINUS,
    NO_PREDICTION,
    ONE,
    SEVEN,
    checked_page,
    demo_server,
    draw,
    grid_values,
    headless_chromium,
    heatmap_colours,
    model_version,
    open_demo,
    predict_directly,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from demo_server(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from headless_chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from checked_page(browser)


@pytest.mark.parametrize(("shape", "expected"), [(SEVEN, 7), (ONE, 1)], ids=["seven", "one"])
def test_draw_predict_and_explain(
    page: Page,
    server: RunningServer,
    tmp_path: Path,
    shape: list[tuple[float, float]],
    expected: int,
) -> None:
    version = open_demo(page, server)
    assert version == model_version(server)
    assert grid_values(page) == [0] * 64

    draw(page, shape)
    expect(page.locator("#pad-placeholder")).to_be_hidden()
    values = grid_values(page)
    assert sum(values) > 0
    assert max(values) <= 16
    columns = [sum(values[row * 8 + col] for row in range(8)) for col in range(8)]
    assert columns[0] == columns[7] == 0  # scaled into the central area, like the data set

    page.get_by_role("button", name="Predict").click()
    label = page.locator("#predicted-label")
    expect(label).to_have_text(DIGIT)
    assert int(label.inner_text()) == expected
    direct = predict_directly(server, values)
    assert direct["labels"] == [expected]
    expect(page.locator("#result-summary")).to_contain_text(f"Predicted digit {expected}")

    bars = page.locator("#probabilities .bar__value").all_inner_texts()
    assert len(bars) == 10
    percentages = [float(text.rstrip("%")) for text in bars]
    assert sum(percentages) == pytest.approx(100.0, abs=0.6)
    assert max(percentages) == percentages[expected]
    assert percentages[expected] == pytest.approx(
        direct["probabilities"][0][expected] * 100, abs=0.06
    )

    colours = heatmap_colours(page)
    assert len(colours) == 64
    assert all(colour.startswith("rgb(") for colour in colours)
    assert len(set(colours)) > 8
    legend = page.locator(".legend__labels").inner_text()
    assert MINUS in legend
    assert "+" in legend
    heat_label = page.locator("#heatmap").get_attribute("aria-label")
    assert heat_label is not None
    assert "Strongest push towards" in heat_label

    expect(page.locator("#result-version")).to_contain_text(version)
    expect(page.locator("#model-version")).to_have_text(version)
    expect(page.locator("#alert")).to_be_empty()

    screenshot = tmp_path / f"demo-{expected}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    draw(page, [(0.1, 0.9), (0.2, 0.9)])  # changing the input marks the result as outdated
    expect(page.locator("#result-version")).to_have_text(
        "The input changed: press Predict to update."
    )
    expect(page.locator("#result-card")).to_have_class(re.compile(r"\bis-stale\b"))


@pytest.mark.parametrize("pointer_type", ["pen", "touch"])
def test_pen_and_touch_draw_on_a_phone_sized_page(
    browser: Browser, server: RunningServer, tmp_path: Path, pointer_type: str
) -> None:
    """Pen and finger Pointer Events draw too (dispatched: Playwright cannot drag with them)."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    open_demo(page, server)
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    common = {"pointerId": 7, "pointerType": pointer_type, "isPrimary": True, "bubbles": True}
    page.dispatch_event(
        "#pad", "pointerdown", {**common, "clientX": x, "clientY": box["y"] + 30, "buttons": 1}
    )
    for step in range(1, 21):
        y = box["y"] + 30 + step * (box["height"] - 60) / 20
        page.dispatch_event("#pad", "pointermove", {**common, "clientX": x, "clientY": y})
    page.dispatch_event("#pad", "pointerup", {**common, "clientX": x, "clientY": y})
    values = grid_values(page)
    # A centred vertical stroke, pen 6 of 32 units wide: half of it (3 of 4 units) in each of
    # columns 4 and 5, i.e. 12/16, with the round caps giving a little less in rows 1 and 8.
    rows = [values[row * 8 : row * 8 + 8] for row in range(8)]
    for row in rows:
        assert row[:3] == row[5:] == [0, 0, 0]
        assert row[3] == row[4]
    assert [row[3] for row in rows[1:7]] == [12] * 6
    assert 6 <= rows[0][3] < 12
    assert rows[0][3] == rows[7][3]
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predicted-label")).to_have_text("1")
    page.screenshot(path=str(tmp_path / f"demo-phone-{pointer_type}.png"), full_page=True)
    context.close()


def test_swagger_ui_still_renders(page: Page, server: RunningServer) -> None:
    """The demo's CSP is not applied to /docs: Swagger UI's page has its own, which admits
    its inline bootstrap by hash (serving/http/docs_page.py) and still renders."""
    response = page.goto(f"{server.base_url}/docs")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "'sha256-" in policy
    assert "frame-ancestors 'none'" in policy
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/predict")).to_have_count(1)


def test_keyboard_only(page: Page, server: RunningServer, tmp_path: Path) -> None:
    open_demo(page, server)
    reached: list[str] = []
    for _ in range(15):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement.id || document.activeElement.getAttribute('role')"
        )
        reached.append(str(focused))
        if focused == "gridcell":
            break
    assert reached[-1] == "gridcell", reached
    assert "clear" in reached
    assert "predict" in reached

    focused_cell = page.locator("#input-grid [role=gridcell]:focus")
    outline = focused_cell.evaluate("cell => getComputedStyle(cell).outlineStyle")
    width = focused_cell.evaluate("cell => parseFloat(getComputedStyle(cell).outlineWidth)")
    assert outline != "none"
    assert width >= 2

    # Draw a "1" with the keyboard, two cells wide as the training digits' strokes are:
    # down column index 3, then up column index 4, toggled on with Space/Enter. (A stroke one
    # cell wide is unlike any training "1": the out-of-distribution detector flags it.)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    for row in range(8):
        page.keyboard.press("Space" if row % 2 == 0 else "Enter")
        if row < 7:
            page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    for row in reversed(range(8)):
        page.keyboard.press("Space" if row % 2 == 0 else "Enter")
        if row > 0:
            page.keyboard.press("ArrowUp")
    page.keyboard.press("Minus")  # the last cell (row 0, column index 4) goes 16 -> 15
    values = grid_values(page)
    assert [values[row * 8 + 3] for row in range(8)] == [16] * 8
    assert [values[row * 8 + 4] for row in range(8)] == [15] + [16] * 7
    assert sum(values) == 16 * 15 + 15

    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.id") == "predict"
    page.keyboard.press("Enter")
    expect(page.locator("#predicted-label")).to_have_text("1")
    expect(page.locator("#result-summary")).to_contain_text("Predicted digit 1")
    assert page.locator("#result-summary").get_attribute("aria-live") == "polite"
    expect(page.locator("#heatmap .heat-cell")).to_have_count(64)
    assert len(set(heatmap_colours(page))) > 1
    page.screenshot(path=str(tmp_path / "demo-keyboard.png"), full_page=True)

    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.id") == "clear"
    page.keyboard.press("Space")
    assert grid_values(page) == [0] * 64
    expect(page.locator("#predicted-label")).to_have_text(NO_PREDICTION)


def test_a_non_digit_is_shown_as_not_a_digit(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    open_demo(page, server)
    cells = page.locator("#input-grid [role=gridcell]")
    for index in range(64):  # every cell on: an all-16 square is not a digit
        cells.nth(index).click()
    assert grid_values(page) == [16] * 64
    page.locator("#predict").click()
    expect(page.locator("#predicted-label")).to_have_text("?")
    expect(page.locator("#result-summary")).to_contain_text("does not look like a digit")
    expect(page.locator("#result-card")).to_have_class(re.compile(r"\bis-ood\b"))
    border = page.locator("#result-card").evaluate("card => getComputedStyle(card).borderTopWidth")
    assert float(border.removesuffix("px")) >= 3
    page.screenshot(path=str(tmp_path / "demo-not-a-digit.png"), full_page=True)

    page.locator("#clear").click()
    expect(page.locator("#predicted-label")).to_have_text(NO_PREDICTION)
    expect(page.locator("#result-card")).not_to_have_class(re.compile(r"\bis-ood\b"))
