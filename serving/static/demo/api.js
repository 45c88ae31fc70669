// Calls to the service, with every failure turned into a readable message.

/** An error whose message is meant to be shown to the person using the page. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
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

async function request(path, options = {}) {
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
    throw new ApiError(describeError(response.status, body), response.status);
  }
  if (body === null || typeof body !== "object") {
    throw new ApiError(`The service answered ${path} with something that is not JSON.`, response.status);
  }
  return body;
}

function postSamples(path, grid) {
  return request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ samples: [grid] }),
  });
}

export const getModel = () => request("/model");
export const predict = (grid) => postSamples("/predict", grid);
export const explain = (grid) => postSamples("/explain", grid);
