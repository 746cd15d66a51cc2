// The detective page: talks to the same JSON API as every other client.
// The key lives in sessionStorage only (gone when the tab closes) and is sent
// as `Authorization: Bearer`; nothing leaves this origin.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "detective.key";
let last = null; // { text, result }
let chosen = null; // the selected segment: { start, end, label, family }

function key() {
  return sessionStorage.getItem(KEY) || "";
}

function status(el, message, kind) {
  el.textContent = message;
  el.className = "status" + (kind ? " " + kind : "");
}

async function call(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (key()) headers.Authorization = "Bearer " + key();
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error("The service cannot be reached (" + e.message + ").");
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const err = data && data.error ? data.error : { code: "http_" + resp.status, message: resp.statusText };
    const hint = resp.status === 401 ? " Enter a valid key above." : "";
    const e = new Error(err.message + hint);
    e.code = err.code;
    e.status = resp.status;
    throw e;
  }
  return data;
}

// Code points, not UTF-16 units: the API's offsets count code points.
function codePoints(s) {
  return Array.from(s);
}

function pct(x) {
  return (100 * x).toFixed(1) + "%";
}

function showKeyState() {
  const k = key();
  status($("key-status"), k ? "A key is in use for this tab (ending …" + k.slice(-4) + ")." : "No key yet: detection may need one.", k ? "ok" : "");
}

function renderVerdict(r) {
  const v = $("verdict");
  v.dataset.label = r.label;
  const words = { machine: "Machine-written", human: "Human-written", unknown: "No verdict" };
  v.textContent = words[r.label] || r.label;
  const threshold = r.operating_point ? r.operating_point.threshold : 0.5;
  $("gauge").setAttribute("aria-valuenow", r.score.toFixed(3));
  $("gauge").setAttribute("aria-valuetext", "score " + r.score.toFixed(3) + ", threshold " + threshold.toFixed(3));
  $("gauge-fill").style.left = pct(Math.min(1, Math.max(0, r.score)));
  $("gauge-mark").style.left = pct(Math.min(1, Math.max(0, threshold)));
  const op = r.operating_point
    ? "operating point " + r.operating_point.threshold.toFixed(3) + " (at most " + pct(r.operating_point.target_fpr) + " of human texts flagged)"
    : "threshold 0.5 (majority vote)";
  $("score-line").textContent = "Machine score " + r.score.toFixed(3) + " against the " + op + ".";
  const note = [r.note, r.abstained ? "No verdict: " + (r.abstained.reason || r.abstained.message || JSON.stringify(r.abstained)) : null]
    .filter(Boolean).join(" ");
  $("note").hidden = !note;
  $("note").textContent = note;
  $("mixed").hidden = !r.mixed;
  const facts = [
    r.machine_votes + " of " + r.k + " neighbours machine, " + r.human_votes + " human",
    "nearest similarity " + r.nearest_similarity.toFixed(3),
    r.novel ? "unlike every reference (novel)" : null,
    r.truncated ? "the whole text is longer than the model reads; segments cover all of it" : null,
    "encoder " + r.encoder,
  ].filter(Boolean);
  const ul = $("facts");
  ul.replaceChildren(...facts.map((f) => Object.assign(document.createElement("li"), { textContent: f })));
}

function renderFamilies(r) {
  const ul = $("families");
  const fams = (r.attribution && r.attribution.families) || [];
  if (!fams.length) {
    ul.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No machine-written neighbours." }));
    return;
  }
  ul.replaceChildren(...fams.map((f) => {
    const li = document.createElement("li");
    const name = Object.assign(document.createElement("span"), { textContent: f.name });
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", f.name + " " + pct(f.share));
    const fill = document.createElement("span");
    fill.style.width = pct(f.share);
    bar.append(fill);
    const share = Object.assign(document.createElement("span"), { textContent: pct(f.share) });
    li.append(name, bar, share);
    return li;
  }));
}

function renderSegments(text, r) {
  const box = $("segmented");
  const chars = codePoints(text);
  const parts = [];
  let at = 0;
  chosen = null;
  $("what-segment").disabled = true;
  $("segment-choice").textContent = "(none selected)";
  for (const s of r.segments || []) {
    if (s.start > at) parts.push(document.createTextNode(chars.slice(at, s.start).join("")));
    const span = document.createElement("span");
    span.className = "seg " + (s.confident === false ? "unsure" : s.label);
    span.textContent = chars.slice(s.start, s.end).join("");
    const tip = s.label + " · score " + s.score.toFixed(3) + (s.family ? " · " + s.family : "") + (s.confident === false ? " · near the threshold" : "");
    span.title = tip;
    span.tabIndex = 0;
    span.setAttribute("role", "button");
    span.setAttribute("aria-pressed", "false");
    span.setAttribute("aria-label", tip + ": " + span.textContent.slice(0, 80));
    span.dataset.label = s.label;
    span.dataset.score = s.score.toFixed(3);
    const pick = () => selectSegment(span, s, chars);
    span.addEventListener("click", pick);
    span.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pick();
      }
    });
    parts.push(span);
    at = s.end;
  }
  if (at < chars.length) parts.push(document.createTextNode(chars.slice(at).join("")));
  box.replaceChildren(...parts);
}

function selectSegment(span, s, chars) {
  for (const el of document.querySelectorAll(".seg[aria-pressed=true]")) el.setAttribute("aria-pressed", "false");
  span.setAttribute("aria-pressed", "true");
  chosen = { text: chars.slice(s.start, s.end).join(""), label: s.label, family: s.family };
  $("what-segment").disabled = false;
  $("what-segment").checked = true;
  $("segment-choice").textContent = "(characters " + s.start + "–" + s.end + ", " + s.label + ")";
  $("ref-label").value = s.label;
  if (s.family && !$("ref-family").value) $("ref-family").value = s.family;
}

function renderNeighbours(r, fresh) {
  const body = $("neighbours").querySelector("tbody");
  body.replaceChildren(...(r.neighbours || []).map((n, i) => {
    const tr = document.createElement("tr");
    if (fresh !== undefined && n.id === fresh) tr.className = "fresh";
    const cell = (t, cls) => {
      const td = document.createElement("td");
      if (t instanceof Node) td.append(t); else td.textContent = t;
      if (cls) td.className = cls;
      return td;
    };
    const details = document.createElement("details");
    const summary = Object.assign(document.createElement("summary"), { textContent: "reference " + n.id });
    details.append(summary);
    details.addEventListener("toggle", () => showReference(details, n.id), { once: true });
    tr.dataset.id = n.id;
    tr.append(cell(String(i + 1)), cell(details), cell(n.label, "label-" + n.label), cell(n.model || "—"),
      cell(n.family || "—"), cell(n.similarity.toFixed(3)));
    return tr;
  }));
}

async function showReference(details, id) {
  const p = document.createElement("p");
  p.textContent = "loading…";
  details.append(p);
  try {
    const ref = await call("GET", "/reference/" + id);
    p.textContent = ref.text;
  } catch (e) {
    p.textContent = e.status === 403 ? "Reading references needs a key with reference:write." : e.message;
  }
}

async function detect(text, fresh) {
  const r = await call("POST", "/detect", { text, explain: true, segments: true });
  last = { text, result: r };
  renderVerdict(r);
  renderFamilies(r);
  renderSegments(text, r);
  renderNeighbours(r, fresh);
  $("result").hidden = false;
  $("add").hidden = false;
  return r;
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

function wire() {
  showKeyState();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const k = $("key").value.trim();
    if (k) sessionStorage.setItem(KEY, k);
    $("key").value = "";
    showKeyState();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showKeyState();
  });

  const area = $("text");
  const count = () => {
    $("chars").textContent = codePoints(area.value).length.toLocaleString() + " characters";
  };
  area.addEventListener("input", count);
  area.addEventListener("dragover", (e) => {
    e.preventDefault();
    area.classList.add("drop");
  });
  area.addEventListener("dragleave", () => area.classList.remove("drop"));
  area.addEventListener("drop", async (e) => {
    area.classList.remove("drop");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    e.preventDefault();
    area.value = await file.text();
    count();
  });

  $("detect-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = area.value;
    if (!text.trim()) {
      status($("detect-status"), "Enter a text first.", "error");
      return;
    }
    busy($("detect"), true);
    status($("detect-status"), "Checking…");
    try {
      const r = await detect(text);
      const n = (r.segments || []).length;
      status($("detect-status"), "Done: " + r.label + ", " + n + " segment" + (n === 1 ? "" : "s") + ".", "ok");
      $("result-heading").focus({ preventScroll: true });
    } catch (err) {
      status($("detect-status"), err.message, "error");
    } finally {
      busy($("detect"), false);
    }
  });

  $("add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!last) return;
    const segment = $("what-segment").checked && chosen;
    const label = $("ref-label").value;
    const body = { text: segment ? chosen.text : last.text, label };
    if (label === "machine") {
      if ($("ref-model").value.trim()) body.model = $("ref-model").value.trim();
      if ($("ref-family").value.trim()) body.family = $("ref-family").value.trim();
    }
    busy($("add-submit"), true);
    status($("add-status"), "Adding…");
    try {
      const made = await call("POST", "/reference", body);
      const r = await detect(last.text, made.id);
      const listed = (r.neighbours || []).findIndex((n) => n.id === made.id);
      const where = listed < 0 ? "it is not among this text's nearest references" : "it is now nearest neighbour " + (listed + 1);
      status($("add-status"), (made.created ? "Added reference " : "Already stored as reference ") + made.id + "; " + where + ".", "ok");
    } catch (err) {
      const hint = err.status === 403 ? " (this key lacks reference:write)" : "";
      status($("add-status"), err.message + hint, "error");
    } finally {
      busy($("add-submit"), false);
    }
  });
  $("result-heading").tabIndex = -1;
}

document.addEventListener("DOMContentLoaded", wire);
