// The drawing demo: pointer drawing, the keyboard-operable 8x8 grid, prediction, explanation
// and feedback (the true digit of a prediction, sent to POST /feedback).

import {
  ApiError,
  FEEDBACK_OFF_MESSAGE,
  apiKey,
  explain,
  feedbackRouteMissing,
  getModel,
  predict,
  sendFeedback,
  setApiKey,
} from "./api.js";
import { GRID, downsample } from "./downsample.js";
import { divergingColour, inkColour } from "./colours.js";

const MAX_VALUE = 16;
const PEN_WIDTH_FRACTION = 0.06; // on-screen pen width, as a fraction of the pad size
const STRONG_FRACTION = 0.25; // |contribution| >= this share of the max gets a +/- mark

const state = {
  strokes: [], // arrays of {x, y} in 0..1 pad coordinates
  activeStroke: null,
  activePointer: null,
  drawn: new Array(GRID * GRID).fill(0), // from the drawing
  edited: new Array(GRID * GRID).fill(null), // keyboard/click overrides, null = follow drawing
  focusIndex: 0,
  modelVersion: null,
  busy: false,
  hasResult: false,
  // Feedback: on when the page says POST /feedback is served; the request id of the shown
  // prediction while it is current (null: nothing to label).
  feedbackOn: false,
  requestId: null,
  predictedLabel: null,
  feedbackBusy: false,
};

const elements = {};

function byId(id) {
  const element = document.getElementById(id);
  if (element === null) {
    throw new Error(`missing element #${id}`);
  }
  return element;
}

// ---------------------------------------------------------------------------------------------
// Messages

function showError(message) {
  elements.alert.textContent = message;
}

function clearError() {
  elements.alert.textContent = "";
}

function showKeyStatus() {
  elements.apiKeyStatus.textContent = apiKey() ? "A key is set for this tab." : "No key set.";
}

function useKey() {
  setApiKey(elements.apiKeyInput.value.trim());
  elements.apiKeyInput.value = "";
  showKeyStatus();
  clearError();
  loadModelInfo();
}

function forgetKey() {
  setApiKey("");
  elements.apiKeyInput.value = "";
  showKeyStatus();
}

function errorText(error) {
  if (error instanceof ApiError && error.status === 401) {
    elements.apiKeyInput.focus();
  }
  return error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
}

// ---------------------------------------------------------------------------------------------
// The 8x8 input grid

function values() {
  return state.drawn.map((drawnValue, index) => state.edited[index] ?? drawnValue);
}

function buildInputGrid() {
  const grid = elements.inputGrid;
  for (let row = 0; row < GRID; row += 1) {
    const rowElement = document.createElement("div");
    rowElement.className = "pixel-grid__row";
    rowElement.setAttribute("role", "row");
    for (let col = 0; col < GRID; col += 1) {
      const index = row * GRID + col;
      const cell = document.createElement("div");
      cell.className = "pixel";
      cell.setAttribute("role", "gridcell");
      cell.tabIndex = index === 0 ? 0 : -1;
      cell.dataset.index = String(index);
      cell.addEventListener("click", () => {
        setFocus(index);
        toggleCell(index);
      });
      rowElement.append(cell);
    }
    grid.append(rowElement);
  }
  grid.addEventListener("keydown", onGridKey);
}

function renderInputGrid() {
  const current = values();
  const cells = elements.inputGrid.querySelectorAll(".pixel");
  cells.forEach((cell, index) => {
    const value = current[index];
    const row = Math.floor(index / GRID) + 1;
    const col = (index % GRID) + 1;
    cell.textContent = value > 0 ? String(value) : "";
    const colour = inkColour(value / MAX_VALUE);
    cell.style.backgroundColor = colour.background;
    cell.style.color = colour.text;
    cell.classList.toggle("pixel--edited", state.edited[index] !== null);
    const edited = state.edited[index] !== null ? ", edited" : "";
    cell.setAttribute("aria-label", `Row ${row}, column ${col}: ${value} of 16${edited}`);
  });
  elements.padPlaceholder.hidden = state.strokes.length > 0;
}

function setFocus(index) {
  const cells = elements.inputGrid.querySelectorAll(".pixel");
  cells[state.focusIndex].tabIndex = -1;
  state.focusIndex = index;
  cells[index].tabIndex = 0;
  cells[index].focus();
}

function setCell(index, value) {
  state.edited[index] = Math.min(MAX_VALUE, Math.max(0, value));
  inputChanged();
}

function toggleCell(index) {
  setCell(index, values()[index] > 0 ? 0 : MAX_VALUE);
}

function onGridKey(event) {
  const index = state.focusIndex;
  const row = Math.floor(index / GRID);
  const col = index % GRID;
  const current = values()[index];
  const moves = {
    ArrowUp: [Math.max(0, row - 1), col],
    ArrowDown: [Math.min(GRID - 1, row + 1), col],
    ArrowLeft: [row, Math.max(0, col - 1)],
    ArrowRight: [row, Math.min(GRID - 1, col + 1)],
    Home: event.ctrlKey ? [0, 0] : [row, 0],
    End: event.ctrlKey ? [GRID - 1, GRID - 1] : [row, GRID - 1],
  };
  if (event.key in moves) {
    const [newRow, newCol] = moves[event.key];
    setFocus(newRow * GRID + newCol);
  } else if (event.key === " " || event.key === "Enter") {
    toggleCell(index);
  } else if (event.key === "+" || event.key === "=") {
    setCell(index, current + 1);
  } else if (event.key === "-" || event.key === "_") {
    setCell(index, current - 1);
  } else if (event.key === "PageUp") {
    setCell(index, current + 4);
  } else if (event.key === "PageDown") {
    setCell(index, current - 4);
  } else if (event.key === "Delete" || event.key === "Backspace" || event.key === "0") {
    setCell(index, 0);
  } else {
    return;
  }
  event.preventDefault();
}

// ---------------------------------------------------------------------------------------------
// The drawing pad (Pointer Events: mouse, touch and pen)

function padPoint(event) {
  const rect = elements.pad.getBoundingClientRect();
  return {
    x: Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)),
    y: Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height)),
  };
}

function renderPad() {
  const { pad } = elements;
  const context = pad.getContext("2d");
  context.clearRect(0, 0, pad.width, pad.height);
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = PEN_WIDTH_FRACTION * pad.width;
  context.strokeStyle = "#111827";
  context.fillStyle = "#111827";
  for (const stroke of state.strokes) {
    context.beginPath();
    if (stroke.length === 1) {
      const { x, y } = stroke[0];
      context.arc(x * pad.width, y * pad.height, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    context.moveTo(stroke[0].x * pad.width, stroke[0].y * pad.height);
    for (const point of stroke.slice(1)) {
      context.lineTo(point.x * pad.width, point.y * pad.height);
    }
    context.stroke();
  }
}

let frameRequested = false;

function scheduleRedraw() {
  if (frameRequested) {
    return;
  }
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    renderPad();
    state.drawn = downsample(state.strokes);
    inputChanged();
  });
}

function onPointerDown(event) {
  if (state.activePointer !== null || (event.pointerType === "mouse" && event.button !== 0)) {
    return;
  }
  event.preventDefault();
  try {
    elements.pad.setPointerCapture(event.pointerId);
  } catch {
    // Not an active pointer (e.g. a synthetic event): drawing still works without capture.
  }
  state.activePointer = event.pointerId;
  state.activeStroke = [padPoint(event)];
  state.strokes.push(state.activeStroke);
  scheduleRedraw();
}

function onPointerMove(event) {
  if (event.pointerId !== state.activePointer) {
    return;
  }
  const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
  for (const sample of events.length > 0 ? events : [event]) {
    state.activeStroke.push(padPoint(sample));
  }
  scheduleRedraw();
}

function onPointerEnd(event) {
  if (event.pointerId !== state.activePointer) {
    return;
  }
  state.activePointer = null;
  state.activeStroke = null;
  scheduleRedraw();
}

function clearAll() {
  state.strokes = [];
  state.activeStroke = null;
  state.activePointer = null;
  state.drawn = new Array(GRID * GRID).fill(0);
  state.edited = new Array(GRID * GRID).fill(null);
  renderPad();
  clearError();
  inputChanged();
  resetResults("Cleared. Draw a digit, then press Predict.");
}

// ---------------------------------------------------------------------------------------------
// Results

function inputChanged() {
  renderInputGrid();
  if (state.hasResult) {
    elements.resultCard.classList.add("is-stale");
    elements.explainCard.classList.add("is-stale");
    elements.resultVersion.textContent = "The input changed: press Predict to update.";
    if (state.requestId !== null) {
      setFeedbackTarget(null, null, "The input changed: press Predict, then the digit you drew.");
    }
  }
}

function resetResults(message) {
  state.hasResult = false;
  elements.resultCard.classList.remove("is-stale", "is-ood");
  elements.explainCard.classList.remove("is-stale");
  elements.predictedLabel.textContent = "–";
  elements.resultSummary.textContent = message;
  elements.resultVersion.textContent = "";
  renderProbabilities(null, null);
  renderHeatmap(null);
  elements.explainMethod.textContent = "";
  setFeedbackTarget(null, null);
}

function renderProbabilities(probabilities, label) {
  const list = elements.probabilities;
  list.replaceChildren();
  for (let digit = 0; digit < 10; digit += 1) {
    const probability = probabilities === null ? 0 : probabilities[digit];
    const percent = (probability * 100).toFixed(1);
    const item = document.createElement("li");
    item.className = "bar";
    item.classList.toggle("bar--top", digit === label);
    const name = document.createElement("span");
    name.className = "bar__label";
    name.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "bar__track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar__fill";
    fill.style.width = `${Math.max(0, Math.min(100, probability * 100))}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar__value";
    value.textContent = probabilities === null ? "–" : `${percent}%`;
    item.setAttribute(
      "aria-label",
      probabilities === null ? `Digit ${digit}: no prediction` : `Digit ${digit}: ${percent} percent`,
    );
    item.append(name, track, value);
    list.append(item);
  }
}

function buildHeatmap() {
  for (let row = 0; row < GRID; row += 1) {
    const rowElement = document.createElement("div");
    rowElement.className = "pixel-grid__row";
    for (let col = 0; col < GRID; col += 1) {
      const cell = document.createElement("div");
      cell.className = "pixel heat-cell";
      rowElement.append(cell);
    }
    elements.heatmap.append(rowElement);
  }
}

function formatSigned(value) {
  const text = Math.abs(value) >= 0.01 || value === 0 ? value.toFixed(2) : value.toExponential(1);
  return value > 0 ? `+${text}` : text.replace("-", "−");
}

function renderHeatmap(contributions) {
  const cells = elements.heatmap.querySelectorAll(".heat-cell");
  if (contributions === null) {
    cells.forEach((cell) => {
      cell.style.backgroundColor = "";
      cell.style.color = "";
      cell.textContent = "";
      cell.removeAttribute("title");
    });
    elements.heatmap.setAttribute("aria-label", "No explanation yet.");
    elements.legendMin.textContent = "−";
    elements.legendMax.textContent = "+";
    return;
  }
  const flat = contributions.flat();
  const largest = Math.max(...flat.map(Math.abs));
  const scale = largest > 0 ? largest : 1;
  cells.forEach((cell, index) => {
    const value = flat[index];
    const share = value / scale;
    const colour = divergingColour(share);
    cell.style.backgroundColor = colour.background;
    cell.style.color = colour.text;
    cell.textContent = Math.abs(share) >= STRONG_FRACTION ? (value > 0 ? "+" : "−") : "";
    const row = Math.floor(index / GRID) + 1;
    const col = (index % GRID) + 1;
    cell.title = `Row ${row}, column ${col}: ${formatSigned(value)}`;
  });
  const maxIndex = flat.indexOf(Math.max(...flat));
  const minIndex = flat.indexOf(Math.min(...flat));
  const where = (index) => `row ${Math.floor(index / GRID) + 1}, column ${(index % GRID) + 1}`;
  elements.heatmap.setAttribute(
    "aria-label",
    `Contribution heatmap. Strongest push towards the prediction at ${where(maxIndex)} ` +
      `(${formatSigned(flat[maxIndex])}); strongest push away at ${where(minIndex)} ` +
      `(${formatSigned(flat[minIndex])}).`,
  );
  elements.legendMin.textContent = formatSigned(-scale);
  elements.legendMax.textContent = formatSigned(scale);
}

async function runPrediction() {
  if (state.busy) {
    return;
  }
  const current = values();
  if (current.every((value) => value === 0)) {
    showError("The 8×8 input is empty: draw a digit or fill some grid cells first.");
    return;
  }
  const grid = [];
  for (let row = 0; row < GRID; row += 1) {
    grid.push(current.slice(row * GRID, (row + 1) * GRID));
  }
  state.busy = true;
  // aria-disabled, not disabled: a disabled button would drop the keyboard focus to <body>.
  elements.predictButton.setAttribute("aria-disabled", "true");
  elements.predictButton.textContent = "Predicting…";
  elements.resultCard.setAttribute("aria-busy", "true");
  clearError();
  try {
    const [{ prediction, requestId }, explanation] = await Promise.all([
      predict(grid),
      explain(grid),
    ]);
    const label = prediction.labels[0];
    const probabilities = prediction.probabilities[0];
    const outOfDistribution = prediction.ood[0] === true;
    const percent = (probabilities[label] * 100).toFixed(1);
    state.hasResult = true;
    elements.resultCard.classList.remove("is-stale");
    elements.explainCard.classList.remove("is-stale");
    elements.resultCard.classList.toggle("is-ood", outOfDistribution);
    elements.predictedLabel.textContent = outOfDistribution ? "?" : String(label);
    elements.resultSummary.textContent = outOfDistribution
      ? `This does not look like a digit (out-of-distribution score ` +
        `${prediction.ood_score[0].toFixed(2)}, flagged above 1). ` +
        `Do not trust the model's guess of ${label} (${percent}%).`
      : `Predicted digit ${label}, probability ${percent}%.`;
    renderProbabilities(probabilities, label);
    renderHeatmap(explanation.explanations[0].contributions);
    elements.explainMethod.textContent =
      `Method: ${explanation.method}. ${explanation.method_description}`;
    showVersion(prediction.model_version);
    elements.resultVersion.textContent = `Answered by model version ${prediction.model_version}.`;
    setFeedbackTarget(requestId, label, requestId === null ? NO_REQUEST_ID : FEEDBACK_HELP);
    if (state.modelVersion !== null && prediction.model_version !== state.modelVersion) {
      showError(
        `The prediction came from model version ${prediction.model_version}, ` +
          `but /model reported ${state.modelVersion}; the service may have been redeployed.`,
      );
    }
  } catch (error) {
    showError(errorText(error));
  } finally {
    state.busy = false;
    elements.predictButton.removeAttribute("aria-disabled");
    elements.predictButton.textContent = "Predict";
    elements.resultCard.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------------------------
// Feedback: the true digit of the shown prediction (POST /feedback, by its request id)

const FEEDBACK_HELP =
  "After a prediction, press the digit you drew: it is sent as the true label of that " +
  "prediction, with the API key above (it needs the feedback scope when the service asks " +
  "for keys).";

const NO_REQUEST_ID =
  "The answer carried no X-Request-ID header (something between the page and the service " +
  "removed it), so this prediction cannot be labelled.";

function digitButtons() {
  return elements.feedbackDigits.querySelectorAll(".digit-button");
}

function showFeedbackStatus(message, isError = false) {
  elements.feedbackStatus.textContent = message;
  elements.feedbackStatus.classList.toggle("is-error", isError);
}

/** Points the digit buttons at a prediction (its request id and predicted label), or at none
 * (``requestId`` null: disabled, with ``why`` as the hint). */
function setFeedbackTarget(requestId, predicted, why = FEEDBACK_HELP) {
  state.requestId = requestId;
  state.predictedLabel = predicted;
  for (const button of digitButtons()) {
    button.setAttribute("aria-pressed", "false");
  }
  if (!state.feedbackOn) {
    return;
  }
  showFeedbackStatus("");
  if (requestId === null) {
    disableFeedback(why);
    return;
  }
  elements.feedbackDigits.disabled = false;
  elements.feedbackHelp.textContent = why;
}

function disableFeedback(why) {
  // A disabled button drops the keyboard focus to <body>: keep it on the status line.
  const hadFocus = elements.feedbackDigits.contains(document.activeElement);
  elements.feedbackDigits.disabled = true;
  elements.feedbackHelp.textContent = why;
  if (hadFocus) {
    elements.feedbackStatus.focus();
  }
}

function feedbackUnavailable() {
  state.feedbackOn = false;
  elements.feedback.classList.add("is-unavailable");
  disableFeedback(FEEDBACK_OFF_MESSAGE);
}

function describeAccuracy(live) {
  const percent = (live.accuracy * 100).toFixed(1);
  const where =
    live.scope === "service"
      ? "counted across the service (every worker and replica)"
      : "counted by the worker that answered (no shared index)";
  return (
    `Live accuracy of model ${live.model_version}: ${live.correct_rows} of ` +
    `${live.labelled_rows} labelled rows right (${percent} %), ${where}.`
  );
}

function describeFeedback(answer, digit, predicted) {
  if (!answer.matched) {
    return (
      `Recorded: it was ${digit}. The worker that answered does not hold this prediction (no ` +
      "shared index), so it is kept unmatched and joined to its decision later."
    );
  }
  const verdict = digit === predicted ? "right" : "wrong";
  if (answer.new_rows === 0) {
    return `Already recorded: this prediction was labelled ${digit} before (the model was ${verdict}); nothing new was written.`;
  }
  return `Recorded: it was ${digit}, so the model was ${verdict}. Thank you.`;
}

async function submitFeedback(digit) {
  const { requestId, predictedLabel } = state;
  if (state.feedbackBusy || requestId === null || !state.feedbackOn) {
    return;
  }
  state.feedbackBusy = true;
  elements.feedback.setAttribute("aria-busy", "true");
  showFeedbackStatus(`Sending ${digit}…`);
  try {
    const answer = await sendFeedback(requestId, [digit]);
    if (state.requestId === requestId) {
      for (const button of digitButtons()) {
        button.setAttribute("aria-pressed", String(Number(button.dataset.digit) === digit));
      }
    }
    showFeedbackStatus(describeFeedback(answer, digit, predictedLabel));
    if (answer.live_accuracy !== null) {
      elements.liveAccuracy.textContent = describeAccuracy(answer.live_accuracy);
    }
  } catch (error) {
    if (feedbackRouteMissing(error)) {
      feedbackUnavailable();
    } else if (error instanceof ApiError && error.status === 401) {
      elements.apiKeyInput.focus();
    }
    showFeedbackStatus(
      error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`,
      true,
    );
  } finally {
    state.feedbackBusy = false;
    elements.feedback.removeAttribute("aria-busy");
  }
}

function initFeedback() {
  const meta = document.querySelector('meta[name="digits-feedback"]');
  state.feedbackOn = meta !== null && meta.getAttribute("content") === "on";
  for (const button of digitButtons()) {
    button.addEventListener("click", () => submitFeedback(Number(button.dataset.digit)));
  }
  if (state.feedbackOn) {
    disableFeedback(FEEDBACK_HELP);
  } else {
    feedbackUnavailable();
  }
}

function showVersion(version) {
  elements.modelVersion.textContent = version;
}

async function loadModelInfo() {
  try {
    const model = await getModel();
    state.modelVersion = model.version;
    showVersion(model.version);
    elements.modelType.textContent = model.model_type.replaceAll("_", " ");
  } catch (error) {
    elements.modelVersion.textContent = "unavailable";
    showError(errorText(error));
  }
}

function init() {
  for (const [key, id] of Object.entries({
    alert: "alert",
    pad: "pad",
    padPlaceholder: "pad-placeholder",
    inputGrid: "input-grid",
    heatmap: "heatmap",
    probabilities: "probabilities",
    predictedLabel: "predicted-label",
    resultSummary: "result-summary",
    resultVersion: "result-version",
    resultCard: "result-card",
    explainCard: "explain-card",
    explainMethod: "explain-method",
    legendMin: "legend-min",
    legendMax: "legend-max",
    modelVersion: "model-version",
    modelType: "model-type",
    predictButton: "predict",
    clearButton: "clear",
    apiKeyInput: "api-key",
    apiKeyUse: "api-key-use",
    apiKeyForget: "api-key-forget",
    apiKeyStatus: "api-key-status",
    feedback: "feedback",
    feedbackDigits: "feedback-digits",
    feedbackHelp: "feedback-help",
    feedbackStatus: "feedback-status",
    liveAccuracy: "live-accuracy",
  })) {
    elements[key] = byId(id);
  }
  buildInputGrid();
  buildHeatmap();
  initFeedback();
  renderInputGrid();
  renderProbabilities(null, null);
  renderPad();
  const { pad } = elements;
  pad.addEventListener("pointerdown", onPointerDown);
  pad.addEventListener("pointermove", onPointerMove);
  pad.addEventListener("pointerup", onPointerEnd);
  pad.addEventListener("pointercancel", onPointerEnd);
  elements.clearButton.addEventListener("click", clearAll);
  elements.predictButton.addEventListener("click", runPrediction);
  elements.apiKeyUse.addEventListener("click", useKey);
  elements.apiKeyForget.addEventListener("click", forgetKey);
  elements.apiKeyInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      useKey();
    }
  });
  showKeyStatus();
  document.body.dataset.ready = "true";
  loadModelInfo();
}

init();
