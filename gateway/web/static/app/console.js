// The centralist's console: compose an action on the map, launch it, follow it, close it.
import { api, stream } from "./api.js";
import {
  $, ACTION_TYPES, OUTCOMES, OUTCOME_DETAILS, STATUS, dateTime, debounce, errorText, h, header, number, say, time,
} from "./ui.js";

const L = window.L;
const state = { config: null, action: null, saving: Promise.resolve(), streams: [], tips: new Map(), drawing: null };

// --- the map -------------------------------------------------------------------------------

const map = L.map("map", { center: [52.15, 5.4], zoom: 8, zoomSnap: 0.5 });
window.consoleMap = map; // for the browser tests and anyone poking at the page from devtools
L.control.scale({ imperial: false }).addTo(map);
map.attributionControl.addAttribution("Grenzen: Natural Earth");
const others = L.layerGroup().addTo(map);
const circle = L.circle([0, 0], { radius: 1, color: "#154273", weight: 2, fillOpacity: 0.12 });
const centre = L.circleMarker([0, 0], { radius: 6, color: "#154273", fillColor: "#e17000", fillOpacity: 1, weight: 2 });
const area = L.polygon([], { color: "#154273", weight: 2, fillOpacity: 0.12 });
const sketch = L.polyline([], { color: "#e17000", weight: 2, dashArray: "6 4" }); // a polygon being drawn

async function drawBackground() {
  if (state.config.map_tiles_url) {
    L.tileLayer(state.config.map_tiles_url, { maxZoom: 19 }).addTo(map);
  }
  else {
    const hint = L.control({ position: "bottomleft" });
    hint.onAdd = () => h("div", { class: "map-hint" }, "Kaart zonder ondergrond (MAP_TILES_URL niet ingesteld): alleen landsgrenzen.");
    hint.addTo(map);
  }
  // RULE: without a configured tile server the map is the bundled outline of NL, BE and DE; with
  // one, the outline's borders stay drawn over the streets (unfilled, so the streets show).
  const tiles = Boolean(state.config.map_tiles_url);
  const outline = await (await fetch("/static/geo/nl-be-de.geojson")).json();
  L.geoJSON(outline, {
    style: (f) => ({ color: "#5f6b77", weight: 1, fillColor: f.properties.iso === "NL" ? "#ffffff" : "#eef1f4", fillOpacity: tiles ? 0 : 1 }),
    interactive: false,
  }).addTo(map).bringToBack();
}

// The action's area: its drawn polygon, else its circle.
function showCircle(action) {
  circle.remove();
  area.remove();
  if (!action || action.lat === undefined) {
    centre.remove();
    return;
  }
  if (action.polygon) area.setLatLngs(action.polygon).addTo(map);
  else circle.setLatLng([action.lat, action.lon]).setRadius(action.radius_m).addTo(map);
  centre.setLatLng([action.lat, action.lon]).addTo(map);
}

map.on("click", (event) => placeIncident(event.latlng.lat, event.latlng.lng));

function placeIncident(lat, lng) {
  if (state.action && state.action.status !== "draft") return; // a launched action stays where it is
  const spot = { lat: +lat.toFixed(6), lon: +lng.toFixed(6) };
  if (state.drawing) {
    state.drawing.push([spot.lat, spot.lon]);
    sketch.setLatLngs(state.drawing).addTo(map);
    $("#finish-area").disabled = state.drawing.length < 3;
    $("#area-hint").textContent = `${state.drawing.length} ${state.drawing.length === 1 ? "hoek" : "hoeken"}; klik verder of sluit het gebied.`;
    return;
  }
  showCircle({ ...spot, radius_m: radius() });
  saveDraft(spot);
}

// The address from the 112 call (postcode + house number): a registered address, else the
// configured geocoder, places the incident as a click there would.
$("#address-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("#address-message");
  try {
    const place = await api(`/api/v1/console/geocode?${new URLSearchParams({ postcode: $("#addr-postcode").value, house_number: $("#addr-number").value })}`);
    map.setView([place.lat, place.lon], Math.max(map.getZoom(), 15));
    say(message, `${place.label} (${place.source === "registered" ? "geregistreerd adres" : "adreszoeker"})`, "ok");
    placeIncident(place.lat, place.lon);
  } catch (err) {
    say(message, errorText(err), "error");
  }
});

// Drawing an area: each click on the map adds a corner; closing it saves the polygon.
function drawMode(on) {
  state.drawing = on ? [] : null;
  sketch.setLatLngs([]).remove();
  $("#draw-area").hidden = on;
  $("#finish-area").hidden = $("#cancel-area").hidden = !on;
  $("#finish-area").disabled = true;
  $("#area-hint").textContent = on ? "Klik op de kaart de hoeken van het gebied aan." : "";
  map.getContainer().classList.toggle("drawing", on);
}

$("#draw-area").addEventListener("click", () => drawMode(true));
$("#cancel-area").addEventListener("click", () => drawMode(false));
$("#finish-area").addEventListener("click", () => {
  const corners = state.drawing;
  drawMode(false);
  if (!corners || corners.length < 3) return;
  showCircle({ lat: corners[0][0], lon: corners[0][1], polygon: corners });
  saveDraft({ polygon: corners });
});

// --- the list of actions -------------------------------------------------------------------

async function loadActions() {
  const actions = await api("/api/v1/actions?limit=30");
  const list = $("#actions");
  list.replaceChildren(
    ...actions.map((a) =>
      h("li", { class: state.action?.id === a.id ? "current" : "", dataset: { actionId: a.id }, onclick: () => select(a) },
        h("span", { class: `badge ${a.status}` }, STATUS[a.status]), " ",
        a.action_code ? `${a.action_code} · ` : "", ACTION_TYPES[a.type], " ",
        h("span", { class: "muted" }, dateTime(a.launched_at || a.created_at))),
    ),
  );
  if (!actions.length) list.append(h("li", { class: "muted" }, "Nog geen acties."));
  others.clearLayers();
  for (const a of actions.filter((x) => x.status === "open" && x.id !== state.action?.id)) {
    const style = { color: "#e17000", weight: 1, fillOpacity: 0.05, interactive: false };
    (a.polygon ? L.polygon(a.polygon, style) : L.circle([a.lat, a.lon], { radius: a.radius_m, ...style })).addTo(others);
  }
}

function select(action) {
  for (const s of state.streams) s.close();
  state.streams = [];
  state.action = action;
  state.tips.clear();
  drawMode(false);
  showCircle(action);
  if (!action || action.status === "draft") compose(action);
  else follow(action);
  loadActions();
}

// --- composing a draft ---------------------------------------------------------------------

const radius = () => Number($("#radius").value);
const channels = () => [$("#ch-sms").checked && "sms", $("#ch-voice").checked && "voice"].filter(Boolean);

function compose(action) {
  $("#compose").hidden = false;
  $("#live").hidden = true;
  $("#compose-title").textContent = action ? `Concept #${action.id}` : "Nieuwe actie";
  $("#type").value = action?.type || "missing_person";
  if (state.templates) loadTemplates();
  $("#description").value = action?.description || "";
  $("#ch-sms").checked = !action || action.channels.includes("sms");
  $("#ch-voice").checked = !action || action.channels.includes("voice");
  $("#radius").value = action?.radius_m || 1000;
  showRadius();
  say($("#compose-message"), "");
  for (const id of ["recipients", "recipients-sms", "recipients-voice"]) $(`#${id}`).textContent = "–";
  $("#sms-text").textContent = action ? "" : "Nog geen plaats gekozen.";
  $("#sms-meta").textContent = "";
  $("#spoken-text").textContent = "";
  $("#play").disabled = $("#launch").disabled = !action;
  if (action) refreshPreview();
}

function showRadius() {
  const m = radius();
  $("#radius-label").textContent = m >= 1000 ? `${(m / 1000).toFixed(1).replace(".", ",")} km` : `${m} m`;
}

// Saves are chained so that a slow request can never overwrite a later change.
function saveDraft(changes) {
  state.saving = state.saving.then(async () => {
    const message = $("#compose-message");
    try {
      if (!state.action) {
        if (changes.lat === undefined && !changes.polygon) return; // nothing to save until a place is chosen
        const description = $("#description").value.trim();
        if (!description) {
          say(message, "Vul eerst de beschrijving in.", "error");
          return;
        }
        state.action = await api("/api/v1/actions", {
          method: "POST",
          // A circle: the place clicked with the slider's radius; or the drawn polygon alone.
          json: { type: $("#type").value, description, channels: channels(), ...(changes.polygon ? {} : { radius_m: radius() }), ...changes },
        });
        $("#compose-title").textContent = `Concept #${state.action.id}`;
        loadActions();
      } else {
        state.action = await api(`/api/v1/actions/${state.action.id}`, { method: "PATCH", json: changes });
      }
      say(message, "");
      showCircle(state.action);
      $("#play").disabled = $("#launch").disabled = false;
      await refreshPreview();
    } catch (err) {
      say(message, errorText(err), "error");
    }
  });
  return state.saving;
}

const saveRadius = debounce(() => saveDraft({ radius_m: radius() }), 300);
const saveDescription = debounce(() => {
  const description = $("#description").value.trim();
  if (description && state.action) saveDraft({ description });
}, 500);

$("#radius").addEventListener("input", () => {
  showRadius();
  if (state.action?.status === "draft" || !state.action) {
    if (state.action) circle.setRadius(radius());
    saveRadius();
  }
});
$("#description").addEventListener("input", saveDescription);
$("#type").addEventListener("change", () => {
  loadTemplates();
  if (state.action) saveDraft({ type: $("#type").value });
});

// Templates: ready texts per action type (admins edit them); the centralist fills in the
// placeholders and the text becomes the description, whose SMS parts and script the preview shows.
const PLACEHOLDER_LABELS = { who: "Wie (signalement)", what: "Wat", where: "Waar", vehicle: "Voertuig", direction: "Richting" };

async function loadTemplates() {
  const type = $("#type").value;
  const templates = await api(`/api/v1/templates?action_type=${type}`);
  // The type changed while this was under way: the call for the new type shows its own (an answer
  // for the type chosen before arriving last hid the new type's templates).
  if (type !== $("#type").value) return;
  state.templates = new Map(templates.map((t) => [String(t.id), t]));
  $("#template").replaceChildren(...templates.map((t) => h("option", { value: t.id }, t.name)));
  $("#template-box").hidden = !templates.length;
  showTemplateFields();
}

function showTemplateFields() {
  const template = state.templates?.get($("#template").value);
  $("#template-fields").replaceChildren(...(template?.placeholders || []).map((name) =>
    h("div", {}, h("label", { for: `t-${name}` }, PLACEHOLDER_LABELS[name] || name), h("input", { id: `t-${name}`, type: "text", maxlength: name === "what" ? 500 : 200 }))));
}

$("#template").addEventListener("change", showTemplateFields);
$("#template-fill").addEventListener("click", async () => {
  const template = state.templates?.get($("#template").value);
  if (!template) return;
  const values = Object.fromEntries(template.placeholders.map((name) => [name, $(`#t-${name}`).value.trim()]).filter(([, v]) => v));
  try {
    const filled = await api(`/api/v1/templates/${template.id}/fill`, { method: "POST", json: values });
    $("#description").value = filled.description;
    if (state.action) saveDraft({ description: filled.description });
  } catch (err) {
    say($("#compose-message"), errorText(err), "error");
  }
});
for (const box of ["#ch-sms", "#ch-voice"]) {
  $(box).addEventListener("change", (event) => {
    if (!channels().length) {
      event.target.checked = true; // at least one channel
      return;
    }
    if (state.action) saveDraft({ channels: channels() });
  });
}

async function refreshPreview() {
  if (!state.action) return;
  const p = await api(`/api/v1/actions/${state.action.id}/preview`);
  $("#recipients").textContent = number(p.total);
  $("#recipients").dataset.count = p.total;
  $("#recipients-sms").textContent = p.recipients.sms === undefined ? "–" : number(p.recipients.sms);
  $("#recipients-voice").textContent = p.recipients.voice === undefined ? "–" : number(p.recipients.voice);
  $("#sms-text").textContent = p.sms.text;
  $("#sms-text").classList.remove("muted");
  const encoding = p.sms.encoding === "gsm7" ? "GSM 7-bit" : "UCS-2 (Unicode)";
  $("#sms-meta").textContent = `${encoding} · ${p.sms.part_count} ${p.sms.part_count === 1 ? "deel" : "delen"} · ${p.sms.text.length} tekens`;
  $("#sms-meta").dataset.parts = p.sms.part_count;
  $("#spoken-text").textContent = p.spoken_text;
  $("#spoken-text").classList.remove("muted");
}

$("#play").addEventListener("click", async () => {
  await state.saving;
  const audio = $("#audio");
  say($("#compose-message"), "Spraak wordt gemaakt…");
  audio.src = `/api/v1/actions/${state.action.id}/audio?v=${encodeURIComponent(state.action.description.length + "-" + Date.now())}`;
  audio.oncanplay = () => say($("#compose-message"), "");
  audio.onerror = () => say($("#compose-message"), "De gesproken tekst kon niet worden gemaakt.", "error");
  audio.play().catch(() => {}); // headless browsers may refuse autoplay; the file is still fetched
});

$("#launch").addEventListener("click", async () => {
  await state.saving;
  if (!state.action) return;
  const total = $("#recipients").dataset.count || "0";
  if (!confirm(`Actie starten en ${total} ontvangers alarmeren?`)) return;
  try {
    const result = await api(`/api/v1/actions/${state.action.id}/launch`, { method: "POST" });
    select(result.action);
  } catch (err) {
    say($("#compose-message"), errorText(err), "error");
  }
});

$("#new-action").addEventListener("click", () => select(null));

// --- following an open (or closed) action --------------------------------------------------

function follow(action) {
  $("#compose").hidden = true;
  $("#live").hidden = false;
  $("#tips").replaceChildren(h("p", { class: "muted" }, "Nog geen tips."));
  $("#tip-count").textContent = "0";
  say($("#live-message"), "");
  showAction(action);
  $("#outcome").value = action.outcome || "none";
  $("#outcome-detail").value = action.outcome_detail || "";
  $("#outcome-note").value = "";
  state.streams.push(stream(`/api/v1/actions/${action.id}/progress/stream`, "progress", (data) => {
    showAction(data.action);
    showProgress(data.rows);
    showBacklog(data.action, data.backlog);
  }));
  state.streams.push(stream(`/api/v1/actions/${action.id}/tips/stream`, "tip", showTip));
}

function showAction(action) {
  const statusChanged = state.action?.status !== action.status;
  state.action = action;
  $("#live-title").textContent = `${action.action_code ? `Actie ${action.action_code}` : `Actie #${action.id}`} · ${ACTION_TYPES[action.type]}`;
  $("#live-title").append(" ", h("span", { class: `badge ${action.status}`, id: "live-status" }, STATUS[action.status]));
  $("#cap-link").href = `/api/v1/actions/${action.id}/cap`;
  $("#cap-link").setAttribute("download", `burgernet-actie-${action.action_code || action.id}.xml`);
  const where = action.polygon ? `getekend gebied (${action.polygon.length} hoeken)` : `straal ${number(action.radius_m)} m`;
  $("#live-description").textContent = `${action.description} — gestart ${dateTime(action.launched_at)}, ${where}`;
  const closed = action.status === "closed";
  $("#live-open").hidden = closed;
  $("#live-closed").hidden = !closed;
  $("#close-action").hidden = closed;
  $("#correct-outcome").hidden = !closed;
  $("#outcome-note-label").textContent = closed ? "Notitie (optioneel)" : "Eigen slotzin voor deelnemers (optioneel)";
  if (closed) {
    const detail = action.outcome_detail ? ` — ${OUTCOME_DETAILS[action.outcome_detail] || action.outcome_detail}` : "";
    $("#outcome-text").textContent = action.outcome
      ? `${OUTCOMES[action.outcome]}${detail}, afgesloten ${dateTime(action.closed_at)}`
      : `Verlopen zonder resultaat, ${dateTime(action.closed_at)}`;
  }
  if (statusChanged) loadActions();
}

const CHANNELS = { sms: "SMS", voice: "spraak" };
const MESSAGE_STATUS = {
  queued: "in wachtrij", sending: "bezig", submitted: "verzonden", delivered: "afgeleverd", answered: "opgenomen",
  failed: "mislukt", cancelled: "geannuleerd",
};

// RULE: what the centralist follows — alerts and updates; the closing message is counted apart.
function showProgress(rows) {
  const sum = (test) => rows.filter(test).reduce((n, r) => n + r.count, 0);
  const outgoing = (r) => r.kind !== "closing";
  const sms = (r) => outgoing(r) && r.channel === "sms";
  const voice = (r) => outgoing(r) && r.channel === "voice";
  const figures = [
    ["queued", "in wachtrij", sum((r) => outgoing(r) && r.status === "queued")],
    ["sent", "SMS verzonden", sum((r) => sms(r) && ["submitted", "delivered"].includes(r.status))],
    ["delivered", "SMS afgeleverd", sum((r) => sms(r) && r.status === "delivered")],
    ["calling", "gesprekken bezig", sum((r) => voice(r) && r.status === "sending")],
    ["answered", "opgenomen", sum((r) => voice(r) && r.status === "answered")],
    ["failed", "mislukt", sum((r) => outgoing(r) && r.status === "failed")],
  ];
  const cancelled = sum((r) => outgoing(r) && r.status === "cancelled");
  if (cancelled) figures.push(["cancelled", "geannuleerd", cancelled]);
  $("#progress").replaceChildren(
    ...figures.map(([key, name, value]) =>
      h("div", { class: `figure${key === "failed" && value ? " warn" : ""}`, dataset: { figure: key, count: value } },
        h("div", { class: "value" }, number(value)), h("div", { class: "name" }, name))),
  );
  const closing = rows.filter((r) => r.kind === "closing");
  $("#closing-progress").textContent = closing.length
    ? `Slotbericht: ${closing.map((r) => `${number(r.count)} ${CHANNELS[r.channel]} ${MESSAGE_STATUS[r.status]}`).join(", ")}`
    : "";
}

const URGENCY = { critical: "zeer urgent", high: "urgent", routine: "niet urgent" };

// What still waits for the binds and lines, and when everyone should be reached at this
// action's share of them (it shares them with the other open actions, by urgency).
function showBacklog(action, backlog) {
  const parts = [`Urgentie: ${URGENCY[action.urgency] || action.urgency}`];
  for (const c of backlog?.channels || []) {
    const eta = c.eta_seconds == null ? "" : `, iedereen bereikt over ~${duration(c.eta_seconds)}`;
    parts.push(`${CHANNELS[c.channel]}: ${number(c.waiting)} wachtend${eta}`);
  }
  $("#backlog").textContent = parts.join(" · ");
}

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} uur`;
}

function tipSummary(tip) {
  if (tip.channel === "sms") return ["SMS", tip.sms_text || ""];
  const how = { ANSWER: "doorverbonden", NOANSWER: "niet opgenomen", BUSY: "in gesprek" }[tip.dial_status] || tip.dial_status;
  const parts = [tip.ended_at ? how || "beëindigd" : "gesprek loopt"];
  if (tip.talk_seconds) parts.push(`${tip.talk_seconds} s`);
  if (tip.matched_by === "action_code") parts.push("via actiecode");
  return ["Oproep", parts.filter(Boolean).join(" · ")];
}

function showTip(tip) {
  const list = $("#tips");
  if (!state.tips.size) list.replaceChildren();
  const [kind, text] = tipSummary(tip);
  const mark = (field, label) =>
    h("button", {
      type: "button", class: `small${tip[field] ? " on" : ""}`, dataset: { mark: field },
      onclick: () => markTip(tip, field),
    }, label);
  const el = h("div", { class: "tip", dataset: { tipId: tip.id, channel: tip.channel } },
    h("div", { class: "row" },
      h("strong", { class: "fixed" }, `${kind} ${time(tip.received_at)}`),
      h("span", {}, tip.caller_number || "nummer onderdrukt")),
    h("div", {}, text),
    tip.recording_path ? h("audio", { controls: true, preload: "none", src: `/api/v1/tips/${tip.id}/recording` }) : null,
    h("div", { class: "row gap-small" }, mark("useful", "Nuttig"), mark("led_to_success", "Leidde tot succes")),
  );
  const old = state.tips.get(tip.id);
  if (old) old.replaceWith(el);
  else list.prepend(el);
  state.tips.set(tip.id, el);
  $("#tip-count").textContent = state.tips.size;
}

// Marking a tip (PATCH /api/v1/tips/{id}): the stream shows the new state within a second.
async function markTip(tip, field) {
  try {
    const changed = await api(`/api/v1/tips/${tip.id}`, { method: "PATCH", json: { [field]: !tip[field] } });
    showTip({ ...tip, ...changed });
  } catch (err) {
    say($("#live-message"), `Tip markeren lukte niet: ${errorText(err)}`, "error");
  }
}

$("#send-update").addEventListener("click", async () => {
  const text = $("#update-text").value.trim();
  if (!text) return say($("#live-message"), "Schrijf eerst de tekst van de update.", "error");
  try {
    const result = await api(`/api/v1/actions/${state.action.id}/updates`, { method: "POST", json: { text } });
    const n = Object.values(result.queued).reduce((a, b) => a + b, 0);
    $("#update-text").value = "";
    say($("#live-message"), `Update verstuurd naar ${number(n)} ontvangers.`, "ok");
  } catch (err) {
    say($("#live-message"), errorText(err), "error");
  }
});

function outcomeBody() {
  const body = { outcome: $("#outcome").value };
  if ($("#outcome-detail").value) body.outcome_detail = $("#outcome-detail").value;
  if ($("#outcome-note").value.trim()) body.note = $("#outcome-note").value.trim();
  return body;
}

// A closed (or expired) action's outcome, set or corrected afterwards: nothing is sent again.
$("#correct-outcome").addEventListener("click", async () => {
  try {
    showAction(await api(`/api/v1/actions/${state.action.id}/outcome`, { method: "POST", json: outcomeBody() }));
    say($("#live-message"), "Resultaat opgeslagen.", "ok");
  } catch (err) {
    say($("#live-message"), errorText(err), "error");
  }
});

$("#close-action").addEventListener("click", async () => {
  const body = outcomeBody();
  if (!confirm("Actie afsluiten? Deelnemers krijgen een slotbericht.")) return;
  try {
    const result = await api(`/api/v1/actions/${state.action.id}/close`, { method: "POST", json: body });
    showAction(result.action);
    say($("#live-message"), `Afgesloten; slotbericht naar ${number(Object.values(result.queued).reduce((a, b) => a + b, 0))} ontvangers.`, "ok");
  } catch (err) {
    say($("#live-message"), errorText(err), "error");
  }
});

// --- start ---------------------------------------------------------------------------------

function fillSelect(el, options, empty) {
  el.replaceChildren(...(empty ? [h("option", { value: "" }, empty)] : []),
    ...Object.entries(options).map(([value, label]) => h("option", { value }, label)));
}

async function start() {
  const me = await api("/api/v1/me");
  header(me, "Console");
  state.config = await api("/api/v1/console/config");
  $("#radius").max = Math.min(state.config.max_radius_m, 50000);
  fillSelect($("#type"), ACTION_TYPES);
  await loadTemplates();
  fillSelect($("#outcome"), OUTCOMES);
  fillSelect($("#outcome-detail"), OUTCOME_DETAILS, "—");
  await drawBackground();
  select(null);
  document.body.dataset.ready = "1";
}

start().catch((err) => say($("#compose-message"), errorText(err), "error"));
