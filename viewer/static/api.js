// Talking to our own /api/ (JSON) and to the raw-frame endpoint (typed arrays), as the signed-in user.
// The session cookie is HttpOnly; changes carry the session's CSRF token in X-CSRF-Token.

let me = null; // GET /api/me: who is signed in and what they may do

/** Remember who is signed in (the answer of /api/me or of the login). */
export function setMe(value) { me = value; }

/** The signed-in user as /api/me answered (qualifications, permissions, methods), or null. */
export function currentUser() { return me; }

/** Whether the signed-in user holds *permission* (e.g. "annotations:write"). */
export function may(permission) { return !!me && me.permissions.includes(permission); }

/** Why the signed-in user may not use *permission* (or ""). */
export function whyNot(permission) { return (me && me.denied && me.denied[permission]) || ""; }

/** Send the browser to the login page, to come back here afterwards. */
export function toLogin() {
  location.assign(`/login${location.hash ? `?next=${encodeURIComponent(location.hash)}` : ""}`);
}

function changing(headers) {
  return me && me.csrf_token ? { ...headers, "X-CSRF-Token": me.csrf_token } : headers;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

async function failure(response) {
  let detail = response.statusText || `HTTP ${response.status}`;
  try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
  return new ApiError(response.status, detail);
}

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
  if (response.status === 401) toLogin(); // the session ended (idle timeout, logout elsewhere)
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export function getJSON(url) {
  return request(url, { headers: { Accept: "application/json" } });
}

/** POST a JSON body, return the JSON answer; ApiError (with the server's reason) otherwise. */
export function postJSON(url, body) {
  return request(url, {
    method: "POST",
    headers: changing({ Accept: "application/json", "Content-Type": "application/json" }),
    body: JSON.stringify(body ?? {}),
  });
}

/** PUT a JSON body, return the JSON answer; ApiError (with the server's reason) otherwise. */
export function putJSON(url, body) {
  return request(url, {
    method: "PUT",
    headers: changing({ Accept: "application/json", "Content-Type": "application/json" }),
    body: JSON.stringify(body ?? {}),
  });
}

/** Log out: end the session, then show the login page. */
export async function logout() {
  try {
    await fetch("/api/session", { method: "DELETE", headers: changing({}) });
  } finally {
    me = null;
    location.assign("/login");
  }
}

const TYPES = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, float32: Float32Array,
};

/** Fetch a raw frame: {data: TypedArray, rows, columns, samples, scale}. */
export async function getPixels(url, signal) {
  const response = await fetch(url, { signal });
  if (response.status === 401) toLogin();
  if (!response.ok) throw await failure(response);
  const type = TYPES[response.headers.get("X-Pixel-Type")];
  if (!type) throw new ApiError(500, "unsupported pixel type " + response.headers.get("X-Pixel-Type"));
  const buffer = await response.arrayBuffer();
  return {
    data: new type(buffer),
    rows: Number(response.headers.get("X-Rows")),
    columns: Number(response.headers.get("X-Columns")),
    samples: Number(response.headers.get("X-Samples") || 1),
    scale: Number(response.headers.get("X-Scale") || 1),
  };
}

export function enc(value) {
  return encodeURIComponent(value);
}
