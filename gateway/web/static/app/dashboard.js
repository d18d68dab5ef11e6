// The municipality's dashboard: its figures against the region, its actions, its participants.
import { api } from "./api.js";
import { $, ACTION_TYPES, OUTCOMES, STATUS, dateTime, debounce, errorText, h, header, number, percent, say } from "./ui.js";

const Chart = window.Chart;
const state = { me: null, municipality: null, charts: {}, editing: null };
const PAGE = 50;

// --- figures (the statistics API) ----------------------------------------------------------

function period() {
  const to = new Date();
  const from = new Date(to.getTime() - Number($("#period").value) * 86400000);
  return { from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) };
}

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
}

function chart(id, config) {
  state.charts[id]?.destroy();
  state.charts[id] = new Chart($(`#${id}`), { ...config, options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options } });
}

async function loadFigures() {
  const { from, to } = period();
  const m = state.municipality;
  const message = $("#stats-message");
  say(message, "");
  try {
    const [summary, signups, comparison] = await Promise.all([
      api(`/api/v1/stats/summary?${query({ municipality: m?.cbs_code, from, to })}`),
      api(`/api/v1/stats/signups?${query({ municipality: m?.cbs_code, from, to, bucket: "month" })}`),
      api(`/api/v1/stats/by-municipality?${query({ region: m?.region, from, to })}`),
    ]);
    showSummary(summary);
    showSignups(signups.series);
    showComparison(comparison);
  } catch (err) {
    say(message, err.status === 404 ? "De statistieken zijn op deze server nog niet beschikbaar." : `Cijfers: ${errorText(err)}`,
      err.status === 404 ? "info" : "error");
  }
}

function showSummary(s) {
  const figures = [
    ["actions", "acties", number(s.actions)],
    ["recipients", "ontvangers (SMS / spraak)", `${number(s.recipients?.sms)} / ${number(s.recipients?.voice)}`],
    ["delivery", "afgeleverd (SMS)", percent(s.delivery_rate)],
    ["answer", "opgenomen (spraak)", percent(s.answer_rate)],
    ["tip-share", "acties met een tip", percent(s.actions_with_tip_share)],
    ["direct", "direct succes", percent(s.direct_success_rate)],
    ["indirect", "indirect succes", percent(s.indirect_success_rate)],
  ];
  $("#summary").replaceChildren(...figures.map(([key, name, value]) =>
    h("div", { class: "figure", dataset: { figure: key } }, h("div", { class: "value" }, value), h("div", { class: "name" }, name))));
}

function showSignups(series) {
  chart("signups-chart", {
    type: "bar",
    data: {
      labels: series.map((p) => p.period),
      datasets: [
        { type: "line", label: "totaal", data: series.map((p) => p.total), borderColor: "#154273", backgroundColor: "#154273", yAxisID: "total", tension: 0.2 },
        { label: "nieuw", data: series.map((p) => p.new), backgroundColor: "#2e7d32" },
        { label: "afgemeld", data: series.map((p) => -p.unsubscribed), backgroundColor: "#c62828" },
      ],
    },
    options: {
      scales: {
        y: { ticks: { precision: 0 }, title: { display: true, text: "per maand" } },
        total: { position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: "totaal" } },
      },
    },
  });
}

function showComparison({ rows, region_average: region, national_average: national }) {
  const own = rows.find((r) => r.cbs_code === state.municipality?.cbs_code) || {};
  const keys = [["actions_with_tip_share", "acties met tip"], ["direct_success_rate", "direct succes"], ["indirect_success_rate", "indirect succes"]];
  const pct = (v) => (v === null || v === undefined ? null : +(v * 100).toFixed(1));
  chart("success-chart", {
    type: "bar",
    data: {
      labels: keys.map(([, label]) => label),
      datasets: [
        { label: state.municipality?.name || "gemeente", data: keys.map(([k]) => pct(own[k])), backgroundColor: "#154273" },
        { label: `gemiddelde ${state.municipality?.region || "regio"}`, data: keys.map(([k]) => pct(region?.[k])), backgroundColor: "#e17000" },
        { label: "landelijk", data: keys.map(([k]) => pct(national?.[k])), backgroundColor: "#9aa5b1" },
      ],
    },
    options: { scales: { y: { beginAtZero: true, suggestedMax: 100, title: { display: true, text: "%" } } } },
  });
}

async function loadAreaActions() {
  const actions = await api("/api/v1/area/actions?limit=50");
  const body = $("#area-actions tbody");
  body.replaceChildren(...actions.map((a) =>
    h("tr", {},
      h("td", {}, dateTime(a.launched_at)), h("td", {}, ACTION_TYPES[a.type]), h("td", {}, a.description),
      h("td", {}, h("span", { class: `badge ${a.status}` }, STATUS[a.status])), h("td", {}, number(a.reached)),
      h("td", {}, number(a.tips)), h("td", {}, a.outcome ? OUTCOMES[a.outcome] : "–"))));
  if (!actions.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Nog geen acties die deelnemers van deze gemeente bereikten.")));
}

// --- the municipality's own messages --------------------------------------------------------

const L = window.L;
const message = { map: null, circle: null, spot: null, draft: null, drafted: "" };

function messageMap() {
  const map = L.map("m-map", { center: [52.15, 5.4], zoom: 8, zoomSnap: 0.5 });
  window.messageMap = map; // for the browser tests
  if (state.config?.map_tiles_url) L.tileLayer(state.config.map_tiles_url, { maxZoom: 19 }).addTo(map);
  fetch("/static/geo/nl-be-de.geojson").then((r) => r.json()).then((outline) => {
    L.geoJSON(outline, { style: { color: "#5f6b77", weight: 1, fillColor: "#ffffff", fillOpacity: state.config?.map_tiles_url ? 0 : 1 }, interactive: false }).addTo(map).bringToBack();
  });
  message.circle = L.circle([0, 0], { radius: 1, color: "#154273", weight: 2, fillOpacity: 0.12 });
  map.on("click", (event) => {
    message.spot = { lat: +event.latlng.lat.toFixed(6), lon: +event.latlng.lng.toFixed(6) };
    message.circle.setLatLng([message.spot.lat, message.spot.lon]).setRadius(Number($("#m-radius").value)).addTo(map);
    $("#m-preview").disabled = false;
  });
  message.map = map;
}

function messageBody() {
  return { description: $("#m-description").value.trim(), ...message.spot, radius_m: Number($("#m-radius").value), tip_line: $("#m-tip-line").checked };
}

$("#m-radius").addEventListener("input", () => {
  const m = Number($("#m-radius").value);
  $("#m-radius-label").textContent = m >= 1000 ? `${(m / 1000).toFixed(1).replace(".", ",")} km` : `${m} m`;
  message.circle?.setRadius(m);
});

// A draft is made for each new preview (a message is not edited: what was previewed is sent).
$("#m-preview").addEventListener("click", async () => {
  const body = messageBody();
  try {
    message.draft = await api("/api/v1/messages", { method: "POST", json: body });
    message.drafted = JSON.stringify(body);
    const p = await api(`/api/v1/messages/${message.draft.id}/preview`);
    $("#m-total").textContent = number(p.total);
    $("#m-waiting").textContent = number(p.waiting);
    $("#m-sms").textContent = p.sms.text;
    $("#m-sms").classList.remove("muted");
    $("#m-send").disabled = false;
    say($("#m-message"), "");
  } catch (err) {
    $("#m-send").disabled = true;
    say($("#m-message"), errorText(err), "error");
  }
});

$("#m-send").addEventListener("click", async () => {
  if (!message.draft || message.drafted !== JSON.stringify(messageBody())) {
    return say($("#m-message"), "Het bericht is gewijzigd: bekijk eerst opnieuw het voorbeeld.", "error");
  }
  try {
    const sent = await api(`/api/v1/messages/${message.draft.id}/send`, { method: "POST" });
    message.draft = null;
    $("#m-send").disabled = true;
    say($("#m-message"), `Verstuurd: ${number(sent.released + sent.waiting)} ontvangers, van wie ${number(sent.waiting)} zodra hun venster opent.`, "ok");
    await loadMessages();
  } catch (err) {
    say($("#m-message"), errorText(err), "error");
  }
});

async function loadMessages() {
  const list = (await api("/api/v1/messages?limit=50")).filter((m) => m.status !== "draft");
  $("#messages tbody").replaceChildren(...list.map((m) =>
    h("tr", { dataset: { messageId: m.id } },
      h("td", {}, dateTime(m.launched_at)), h("td", {}, m.description),
      h("td", {}, h("span", { class: `badge ${m.status}` }, STATUS[m.status])),
      h("td", { dataset: { released: m.released } }, number(m.released)), h("td", { dataset: { waiting: m.waiting } }, number(m.waiting)))));
  if (!list.length) $("#messages tbody").append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nog geen berichten verstuurd.")));
}

// --- participants --------------------------------------------------------------------------

async function loadParticipants() {
  const q = $("#search").value.trim();
  const list = await api(`/api/v1/participants?${query({ q, limit: PAGE })}`);
  const channel = { sms: "SMS", voice: "spraak" };
  $("#participants tbody").replaceChildren(...list.map((p) =>
    h("tr", { dataset: { participantId: p.id } },
      h("td", {}, p.name), h("td", {}, p.phone),
      h("td", {}, p.addresses.map((a) => `${a.postcode} ${a.house_number}`).join("; ")),
      h("td", {}, [...new Set(p.addresses.map((a) => channel[a.channel]))].join(", ")),
      h("td", {}, p.unsubscribed_at ? "afgemeld" : p.pause_from ? `pauze ${p.pause_from} – ${p.pause_until || "…"}` : "actief"),
      h("td", {}, h("button", { type: "button", class: "small", onclick: () => edit(p) }, "Wijzigen")))));
  if (!list.length) $("#participants tbody").append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, q ? "Niemand gevonden." : "Nog geen deelnemers.")));
  $("#participants-more").textContent = list.length === PAGE ? `De eerste ${PAGE} getoond; zoek om te vinden wie u zoekt.` : "";
}

$("#search").addEventListener("input", debounce(loadParticipants, 300));

function addressFields(a = {}) {
  const field = (name, label, value, attrs = {}) =>
    h("div", {}, h("label", {}, label), h("input", { type: "text", name, value: value ?? "", ...attrs }));
  const fieldset = h("fieldset", { class: "address" },
    h("div", { class: "row" },
      h("div", { class: "fixed" }, h("label", {}, "Land"),
        h("select", { name: "country" }, ...["NL", "BE", "DE"].map((c) => h("option", { value: c, selected: a.country === c }, c)))),
      field("postcode", "Postcode", a.postcode, { required: true, maxlength: 8 }),
      field("house_number", "Huisnummer", a.house_number, { required: true, maxlength: 10 })),
    h("div", { class: "row" },
      field("lat", "Breedtegraad", a.lat, { required: true, inputmode: "decimal" }),
      field("lon", "Lengtegraad", a.lon, { required: true, inputmode: "decimal" }),
      h("div", { class: "fixed" }, h("label", {}, "Kanaal"),
        h("select", { name: "channel" }, h("option", { value: "sms", selected: a.channel === "sms" }, "SMS"),
          h("option", { value: "voice", selected: a.channel === "voice" }, "spraak")))),
    h("div", { class: "windows" }, ...(a.windows || []).map(windowFields)),
    h("p", { class: "muted" }, "Zonder ontvangstvenster: altijd bereikbaar."),
    h("div", { class: "row" },
      h("button", { type: "button", class: "small fixed add-window", onclick: () => fieldset.querySelector(".windows").append(windowFields()) }, "Ontvangstvenster toevoegen"),
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "small fixed", onclick: () => fieldset.remove() }, "Adres verwijderen")));
  return fieldset;
}

// One receive window: the weekdays it starts on, from and until (local time; an end before the
// start runs past midnight into the next day).
const WEEKDAYS = { mo: "ma", tu: "di", we: "wo", th: "do", fr: "vr", sa: "za", su: "zo" };

function windowFields(w = { days: Object.keys(WEEKDAYS), start: "", end: "" }) {
  const row = h("div", { class: "row window" },
    ...Object.entries(WEEKDAYS).map(([day, label]) =>
      h("label", { class: "fixed day" }, h("input", { type: "checkbox", name: `day-${day}`, checked: w.days.includes(day) }), ` ${label}`)),
    h("div", {}, h("label", {}, "van (UU:MM)"), h("input", { type: "text", name: "start", value: w.start, maxlength: 5, required: true })),
    h("div", {}, h("label", {}, "tot (UU:MM)"), h("input", { type: "text", name: "end", value: w.end, maxlength: 5, required: true })),
    h("button", { type: "button", class: "small fixed", onclick: () => row.remove() }, "×"));
  return row;
}

function openDialog(p) {
  state.editing = p;
  $("#participant-title").textContent = p ? `Deelnemer wijzigen: ${p.name}` : "Deelnemer toevoegen";
  $("#p-name").value = p?.name || "";
  $("#p-phone").value = p?.phone || "";
  $("#p-language").value = p?.language || "nl";
  $("#p-pause-from").value = p?.pause_from || "";
  $("#p-pause-until").value = p?.pause_until || "";
  $("#p-addresses").replaceChildren(...(p ? p.addresses : [{}]).map(addressFields));
  say($("#participant-message"), "");
  $("#participant-dialog").showModal();
}

const edit = (p) => openDialog(p);
$("#add-participant").addEventListener("click", () => openDialog(null));
$("#p-add-address").addEventListener("click", () => $("#p-addresses").append(addressFields()));
$("#p-cancel").addEventListener("click", () => $("#participant-dialog").close());

function formBody() {
  const value = (el, name) => el.querySelector(`[name=${name}]`).value.trim();
  const addresses = [...document.querySelectorAll("#p-addresses fieldset")].map((f) => {
    const a = { country: value(f, "country"), postcode: value(f, "postcode"), house_number: value(f, "house_number"),
      lat: Number(value(f, "lat").replace(",", ".")), lon: Number(value(f, "lon").replace(",", ".")), channel: value(f, "channel") };
    const windows = [...f.querySelectorAll(".window")].map((row) => ({
      days: Object.keys(WEEKDAYS).filter((day) => row.querySelector(`[name=day-${day}]`).checked),
      start: value(row, "start"), end: value(row, "end"),
    }));
    if (windows.length) a.windows = windows;
    return a;
  });
  const body = { name: $("#p-name").value.trim(), phone: $("#p-phone").value.trim(), language: $("#p-language").value, addresses };
  if ($("#p-pause-from").value) body.pause_from = $("#p-pause-from").value;
  if ($("#p-pause-until").value) body.pause_until = $("#p-pause-until").value;
  return body;
}

$("#participant-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const p = state.editing;
  try {
    await api(p ? `/api/v1/participants/${p.id}` : "/api/v1/participants", { method: p ? "PUT" : "POST", json: formBody() });
    $("#participant-dialog").close();
    await Promise.all([loadParticipants(), loadFigures()]);
  } catch (err) {
    say($("#participant-message"), errorText(err), "error");
  }
});

// --- CSV import ----------------------------------------------------------------------------

$("#import").addEventListener("click", async () => {
  const file = $("#csv-file").files[0];
  const message = $("#import-message");
  const table = $("#import-errors");
  table.hidden = true;
  if (!file) return say(message, "Kies eerst een CSV-bestand.", "error");
  const form = new FormData();
  form.append("file", file);
  say(message, "Bezig met importeren…");
  try {
    const report = await api("/api/v1/participants/import", { method: "POST", form });
    const summary = `${number(report.rows)} regels: ${number(report.created)} nieuw, ${number(report.updated)} bijgewerkt`;
    if (report.errors.length) {
      say(message, `${summary}, ${number(report.errors.length)} ${report.errors.length === 1 ? "regel" : "regels"} met fouten (niet ingelezen):`, "error");
      $("#import-errors tbody").replaceChildren(...report.errors.map((e) =>
        h("tr", { dataset: { row: e.row } }, h("td", {}, e.row), h("td", {}, e.field || "–"), h("td", {}, e.message))));
      table.hidden = false;
    } else {
      say(message, `${summary}. Geen fouten.`, "ok");
    }
    await Promise.all([loadParticipants(), loadFigures()]);
  } catch (err) {
    say(message, errorText(err), "error");
  }
});

// --- start ---------------------------------------------------------------------------------

async function start() {
  state.me = await api("/api/v1/me");
  header(state.me, "Dashboard");
  const config = await api("/api/v1/console/config");
  state.config = config;
  state.municipality = config.municipality;
  messageMap();
  $("#municipality-name").textContent = state.municipality ? state.municipality.name : "(beheerder)";
  $("#period").addEventListener("change", loadFigures);
  await Promise.all([loadParticipants(), loadMessages(), loadAreaActions().catch((err) => say($("#stats-message"), errorText(err), "error")), loadFigures()]);
  document.body.dataset.ready = "1";
}

start().catch((err) => say($("#stats-message"), errorText(err), "error"));
