// The API as the pages use it: the session cookie authenticates, the header below marks our own
// scripts (the CSRF guard for state-changing requests), and a 401 sends the visitor to log in.
export const CSRF_HEADER = "X-Burgernet-Request";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", json, form, redirectOn401 = true } = {}) {
  const headers = { [CSRF_HEADER]: "1", Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (response.status === 401 && redirectOn401) {
    location.assign(`/login/?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(401, { message: "niet ingelogd" });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function logout() {
  await fetch("/auth/logout", { method: "POST", headers: { [CSRF_HEADER]: "1" }, credentials: "same-origin" });
  location.assign("/login/");
}

// Server-sent events with the cookie; reconnects on its own (EventSource does).
export function stream(path, event, onData) {
  const source = new EventSource(path, { withCredentials: true });
  source.addEventListener(event, (e) => onData(JSON.parse(e.data)));
  return source;
}
