// Calls to the service, with every failure turned into a readable message.

/** An error whose message is meant to be shown to the person using the page. */
export class ApiError extends Error {
  constructor(message, status, reason = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason; // the error shape's reason code, when the service sent one
  }
}

/** A sentence for a non-2xx answer, using the service's error shape when there is one. */
export function describeError(status, body) {
  const hasShape = body !== null && typeof body === "object" && typeof body.message === "string";
  if (!hasShape) {
    return `The service answered HTTP ${status} without an error message.`;
  }
  const where = body.location ? ` (at ${body.location})` : "";
  const requestId = body.request_id ? ` Request id: ${body.request_id}.` : "";
  if (status === 401) {
    return `This service needs an API key (HTTP 401): enter one under "API key" above; it is kept only for this tab.${requestId}`;
  }
  if (status === 403) {
    return `This API key may not do that (HTTP 403): ${body.message}.${requestId}`;
  }
  if (status === 429) {
    return `Too many requests (HTTP 429): ${body.message}.${requestId}`;
  }
  if (status === 503) {
    return `The model is not ready (HTTP 503): ${body.message}.${requestId}`;
  }
  const reason = body.reason ? `, ${body.reason}` : "";
  return `The service rejected the request (HTTP ${status}${reason}): ${body.message}${where}.${requestId}`;
}

const KEY_ITEM = "digits-api-key";

/** The API key of this tab's session (sessionStorage only: gone when the tab closes). */
export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? "";
}

export function setApiKey(key) {
  if (key) {
    sessionStorage.setItem(KEY_ITEM, key);
  } else {
    sessionStorage.removeItem(KEY_ITEM);
  }
}

export const FEEDBACK_OFF_MESSAGE =
  "Feedback is not enabled on this service (DIGITS_FEEDBACK is off): predictions work as " +
  "usual, but true labels cannot be sent.";

/** Whether a feedback answer means that POST /feedback is not served here (DIGITS_FEEDBACK
 * off): the route is absent, so the path is unknown (404 not_found) or has no POST (405). */
export function feedbackRouteMissing(error) {
  return (
    error instanceof ApiError &&
    ((error.status === 404 && error.reason !== "unknown_request") || error.status === 405)
  );
}

/** A sentence for a non-2xx answer of POST /feedback. */
export function describeFeedbackError(status, body) {
  const hasShape = body !== null && typeof body === "object" && typeof body.message === "string";
  if (status === 405 || (status === 404 && (!hasShape || body.reason !== "unknown_request"))) {
    return FEEDBACK_OFF_MESSAGE;
  }
  if (!hasShape) {
    return `The service answered the feedback with HTTP ${status} and no error message.`;
  }
  const requestId = body.request_id ? ` Request id: ${body.request_id}.` : "";
  const said = `The service said: ${body.message.replace(/\.$/, "")}.${requestId}`;
  if (status === 401) {
    return `Sending feedback needs a valid API key (HTTP 401): enter one with the feedback scope under "API key" above. ${said}`;
  }
  if (status === 403) {
    return `This API key may not send feedback (HTTP 403): it needs the feedback scope, which is separate from predict. ${said}`;
  }
  if (status === 404) {
    return `The service does not know this prediction (HTTP 404, unknown_request): it is older than the feedback window, or its record was lost. Predict again, then press the digit. ${said}`;
  }
  if (status === 409) {
    return `This prediction already has a different true label (HTTP 409, feedback_exists): each row takes one answer, and the first one stands. ${said}`;
  }
  if (status === 429) {
    return `Too many requests (HTTP 429): wait a moment, then press the digit again. ${said}`;
  }
  if (status === 503) {
    return `The feedback was not stored (HTTP 503, ${body.reason}): press the digit again to resend it. ${said}`;
  }
  return `The service refused the feedback (HTTP ${status}, ${body.reason}). ${said}`;
}

/** Status, headers and JSON body of a call; a non-2xx answer throws an ApiError. */
async function request(path, options = {}, describe = describeError) {
  const key = apiKey();
  const auth = key ? { authorization: `Bearer ${key}` } : {};
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { accept: "application/json", ...auth, ...(options.headers ?? {}) },
    });
  } catch (error) {
    throw new ApiError(
      `Could not reach the service (${error.message}). Check that it is running, then try again.`,
      0,
    );
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const reason = body !== null && typeof body === "object" ? (body.reason ?? null) : null;
    throw new ApiError(describe(response.status, body), response.status, reason);
  }
  if (body === null || typeof body !== "object") {
    throw new ApiError(`The service answered ${path} with something that is not JSON.`, response.status);
  }
  return { body, headers: response.headers };
}

function postJson(path, payload, describe = describeError) {
  return request(
    path,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
    },
    describe,
  );
}

export const getModel = async () => (await request("/model")).body;

/** The answer of /predict and its request id (the X-Request-ID header: same origin, so the
 * page can read it), which names the decision a feedback labels. */
export async function predict(grid) {
  const { body, headers } = await postJson("/predict", { samples: [grid] });
  return { prediction: body, requestId: headers.get("x-request-id") };
}

export const explain = async (grid) => (await postJson("/explain", { samples: [grid] })).body;

/** POST /feedback: one true label per row of the decision ``requestId`` names. */
export const sendFeedback = async (requestId, labels) =>
  (await postJson("/feedback", { request_id: requestId, labels }, describeFeedbackError)).body;
