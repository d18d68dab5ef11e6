// The login page: the API key is exchanged once for an HttpOnly session cookie.
import { CSRF_HEADER } from "./api.js";
import { $, say } from "./ui.js";

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("#login-message");
  say(message, "Bezig…");
  const response = await fetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
    body: JSON.stringify({ api_key: $("#api-key").value }),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(message, response.status === 401 ? "Deze sleutel is onbekend of ingetrokken." : body.message || `Fout ${response.status}`, "error");
    return;
  }
  $("#api-key").value = "";
  const next = new URLSearchParams(location.search).get("next");
  // Only our own pages (an open redirect makes a convincing phishing link), and the one for this role.
  const allowed = body.user.role === "admin" ? ["/console/", "/dashboard/"] : [body.home];
  location.assign(allowed.includes(next) ? next : body.home);
});
$("#login-submit").disabled = false;
