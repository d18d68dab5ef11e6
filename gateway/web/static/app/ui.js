// Small DOM and formatting helpers shared by the console and the dashboard.
import { logout } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export const number = (n) => (n === null || n === undefined ? "–" : new Intl.NumberFormat("nl-NL").format(n));
export const percent = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1).replace(".", ",")}\u00a0%`);
export const dateTime = (s) =>
  s ? new Date(s).toLocaleString("nl-NL", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }) : "–";
export const time = (s) => (s ? new Date(s).toLocaleTimeString("nl-NL", { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–");

export const ACTION_TYPES = {
  missing_person: "Vermiste persoon", burglary: "Inbraak", robbery: "Overval", hit_and_run: "Doorrijden na ongeval",
  shop_theft: "Winkeldiefstal", other: "Overig",
};
export const STATUS = { draft: "Concept", open: "Lopend", closed: "Afgesloten" };
export const OUTCOMES = { direct: "Direct succes", indirect: "Indirect succes", none: "Geen succes" };
export const OUTCOME_DETAILS = {
  arrest: "Verdachte aangehouden", person_found: "Persoon gevonden", vehicle_found: "Voertuig gevonden",
  goods_found: "Goederen gevonden", other: "Anders",
};

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A message line under a form: errors in red, the API's message as it is (it names the field).
export function say(el, text, kind = "info") {
  el.textContent = text;
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

export function errorText(err) {
  const errors = err?.body?.details?.errors;
  if (errors?.length) return errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  return err?.message || String(err);
}

// The top bar: who is logged in, and the way out.
export function header(me, title) {
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#logout").addEventListener("click", () => logout());
  document.title = `${title} — Burgernet`;
}
