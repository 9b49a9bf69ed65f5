// animefaces review: every crawled string goes on the page through textContent or attributes,
// never as HTML; only http(s) URLs become links. Writes carry the start token in a header.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const NO_TOKEN = "no token in the URL: you can look, but writes will be refused (use the URL the app printed)";
const PAGE = { rejected: 100, accepted: 100, clusters: 20 };
const S = {
  view: "rejected", reason: null, sort: null, desc: false, offset: 0,
  items: [], clusters: [], selected: new Set(), anchor: null, focus: null, undo: [], summary: null,
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN },
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3).replace(/\.?0+$/, "");
  return String(value);
}

function httpUrl(url) {
  try {
    const parsed = new URL(String(url));
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

// ------------------------------------------------------------------ location
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  S.view = ["rejected", "accepted", "clusters"].includes(h.get("view")) ? h.get("view") : "rejected";
  S.reason = h.get("reason");
  S.sort = h.get("sort");
  S.desc = h.get("desc") === "1";
  S.offset = Math.max(0, parseInt(h.get("offset") || "0", 10) || 0);
  return h.get("open");
}

function writeHash() {
  const h = new URLSearchParams({ view: S.view });
  if (S.view === "rejected" && S.reason) h.set("reason", S.reason);
  if (S.view !== "clusters" && S.sort) h.set("sort", S.sort);
  if (S.desc) h.set("desc", "1");
  if (S.offset) h.set("offset", String(S.offset));
  history.replaceState(null, "", location.pathname + location.search + "#" + h.toString());
}

// ------------------------------------------------------------------ summary, tabs, toolbar
function rulesFor(reason) {
  return (S.summary ? S.summary.rules : []).filter((r) => r.reason === reason);
}

function showSummary() {
  const s = S.summary;
  const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0);
  $("n-rejected").textContent = `(${rejected})`;
  $("n-accepted").textContent = `(${s.accepted})`;
  $("n-clusters").textContent = `(${s.clusters})`;
  for (const button of document.querySelectorAll("#views button")) button.classList.toggle("on", button.dataset.view === S.view);
  const reasons = $("reasons");
  reasons.replaceChildren();
  if (S.view === "rejected") {
    for (const [reason, count] of Object.entries(s.rejected)) {
      const button = el("button", { type: "button", "data-reason": reason, class: reason === S.reason ? "on" : "" },
        el("span", { text: reason }), el("span", { class: "n", text: ` ${count}` }));
      button.addEventListener("click", () => { S.reason = reason; S.offset = 0; S.sort = null; load(); });
      reasons.append(button);
    }
  }
  const sort = $("sort");
  sort.replaceChildren();
  if (S.view === "rejected") sort.append(el("option", { value: "value", text: "deciding value" }));
  for (const [key, label] of Object.entries(s.sort_keys)) sort.append(el("option", { value: key, text: label }));
  sort.append(el("option", { value: "id", text: "crop id" }));
  sort.value = S.sort;
  $("desc").checked = S.desc;
  for (const id of ["sort-label", "select-all", "select-none", "selection"]) $(id).hidden = false;
  $("sort-label").hidden = $("desc").parentElement.hidden = S.view === "clusters";
  $("promote").hidden = S.view !== "rejected";
  $("demote").hidden = $("reason-label").hidden = S.view !== "accepted";
  const rule = $("rule");
  if (S.view === "rejected" && S.reason) {
    const parts = rulesFor(S.reason).map((r) => r.op ? `${r.value_key} ${r.op} ${fmt(r.threshold)} (${r.meaning})` : r.meaning);
    rule.textContent = `${S.reason}: ` + (parts.join(" or ") || "a person's reason (demoted)");
  } else if (S.view === "accepted") {
    rule.textContent = "Accepted crops, worst first by the chosen measurement; demote the ones that should not be in the dataset.";
  } else if (S.view === "clusters") {
    rule.textContent = "Duplicate clusters of the last dedup run: the kept face is framed green. "
      + "\u201cnot a duplicate\u201d splits a face out; \u201ckeep this one\u201d changes the kept face.";
  } else {
    rule.textContent = "";
  }
}

function showSelection() {
  $("selection").textContent = S.selected.size ? `${S.selected.size} selected` : "";
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", S.selected.has(card.dataset.id));
}

// ------------------------------------------------------------------ cards
function valueLine(item) {
  if (S.view === "rejected" && item.deciding) {
    const d = item.deciding;
    return d.key ? `${d.key} ${fmt(d.value)} ${d.op} ${fmt(d.threshold)}` : (d.meaning || item.reason || "");
  }
  const key = { likelihood: "likelihood", sharpness: "sharpness", saturation: "saturation", colors: "unique_colors",
    size: "face_side", confidence: "confidence" }[S.sort] || "likelihood";
  const value = key === "likelihood" ? item.likelihood : (item.values || {})[key];
  return `${key} ${fmt(value)}`;
}

function stateLine(item) {
  const text = item.decision === "accepted" ? "accepted" : `rejected: ${item.reason}`;
  const span = el("div", { class: "state", text });
  if (item.pending) span.append(el("span", { class: "pending", text: item.override ? ` (${item.override}d; next run)` : " (next run)" }));
  return span;
}

function card(item, buttons) {
  const node = el("div", { class: `card now-${item.decision === "accepted" ? "accepted" : "rejected"}`, "data-id": item.id, tabindex: "0" });
  node.append(item.has_crop
    ? el("img", { class: "thumb", loading: "lazy", decoding: "async", src: `/thumb/${encodeURIComponent(item.id)}`, alt: item.id })
    : el("div", { class: "noimg", text: "no crop" }));
  if (item.decision) node.append(stateLine(item));
  if (item.decision) node.append(el("div", { class: "value", text: valueLine(item) }));
  node.append(el("div", { class: "src", title: item.title || "", text: item.title || item.id }));
  const row = el("div", { class: "row" });
  for (const [label, cls, handler] of buttons) {
    const button = el("button", { type: "button", class: cls, text: label });
    button.addEventListener("click", (event) => { event.stopPropagation(); handler(); });
    row.append(button);
  }
  node.append(row);
  node.addEventListener("click", (event) => select(item.id, event));
  node.addEventListener("focus", () => { S.focus = item.id; });
  return node;
}

function cropButtons(item) {
  const buttons = [["open", "open", () => openSource(item)]];
  if (item.has_crop && item.decision !== "accepted") buttons.push(["promote", "promote", () => decideCrops([item.id], "promote")]);
  if (item.has_crop && item.decision === "accepted") buttons.push(["demote", "demote", () => decideCrops([item.id], "demote")]);
  return buttons;
}

function renderCrops() {
  const grid = $("grid");
  grid.replaceChildren(...S.items.map((item) => card(item, cropButtons(item))));
  if (!S.items.length) grid.append(el("p", { text: "nothing here" }));
}

function renderClusters() {
  const grid = $("grid");
  grid.replaceChildren();
  for (const cluster of S.clusters) grid.append(clusterNode(cluster));
  if (!S.clusters.length) grid.append(el("p", { text: "no duplicate clusters (run dedup first, or there are none)" }));
}

function clusterNode(cluster) {
  const members = el("div", { class: "members" });
  for (const member of cluster.members) {
    const buttons = [["open", "open", () => openSource(member)]];
    if (member.split) buttons.push(["rejoin", "rejoin", () => decideClusters([member.id], "clear")]);
    else buttons.push(["not a duplicate", "split", () => decideClusters([member.id], "split")]);
    if (!member.kept && !member.split) buttons.push(["keep this one", "keep", () => decideClusters([member.id], "keep")]);
    const node = card(member, buttons);
    node.classList.toggle("kept", member.kept);
    node.classList.toggle("split", member.split);
    if (member.split) node.insertBefore(el("div", { class: "state", text: "not a duplicate (next run)" }), node.querySelector(".src"));
    members.append(node);
  }
  const head = `${cluster.members.length} members · kept ${cluster.kept_now || "none"} · ${cluster.why}`;
  return el("section", { class: "cluster", "data-cluster": cluster.cluster_id, "data-index": cluster.index },
    el("h2", { text: head }), members);
}

// ------------------------------------------------------------------ loading
async function loadSummary() {
  S.summary = await api("/api/summary");
}

async function load() {
  S.selected.clear();
  S.anchor = null;
  try {
    await loadSummary();
    if (S.view === "rejected") {
      const reasons = Object.keys(S.summary.rejected);
      if (!reasons.includes(S.reason)) S.reason = reasons[0] || null;
    }
    if (!S.sort || (S.view === "accepted" && S.sort === "value")) S.sort = S.view === "rejected" ? "value" : "likelihood";
    writeHash();
    showSummary();
    const limit = PAGE[S.view];
    let data;
    if (S.view === "clusters") {
      data = await api(`/api/clusters?offset=${S.offset}&limit=${limit}`);
      S.clusters = data.items;
      renderClusters();
    } else {
      const q = new URLSearchParams({ view: S.view, sort: S.sort, desc: S.desc ? "1" : "0", offset: S.offset, limit });
      if (S.view === "rejected") {
        if (!S.reason) { S.items = []; renderCrops(); pager(0, 0, limit); return; }
        q.set("reason", S.reason);
      }
      data = await api(`/api/crops?${q}`);
      S.items = data.items;
      renderCrops();
    }
    S.offset = data.offset;
    pager(data.total, data.offset, limit);
    showSelection();
    status(TOKEN ? "" : NO_TOKEN, !TOKEN);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

function pager(total, offset, limit) {
  const last = Math.min(total, offset + limit);
  $("page-info").textContent = total ? `${offset + 1}–${last} of ${total}` : "0";
  $("prev").disabled = offset <= 0;
  $("next").disabled = last >= total;
  $("pager").dataset.total = String(total);
}

function go(delta) {
  const limit = PAGE[S.view];
  const next = S.offset + delta * limit;
  const total = parseInt($("pager").dataset.total || "0", 10);
  if (next < 0 || next >= total) return;
  S.offset = next;
  load().then(() => window.scrollTo(0, 0));
}

// ------------------------------------------------------------------ selection
function visibleIds() {
  return [...document.querySelectorAll("#grid .card")].map((node) => node.dataset.id);
}

function select(id, event) {
  const ids = visibleIds();
  if (event && event.shiftKey && S.anchor && ids.includes(S.anchor)) {
    const [a, b] = [ids.indexOf(S.anchor), ids.indexOf(id)].sort((x, y) => x - y);
    for (const other of ids.slice(a, b + 1)) S.selected.add(other);
  } else if (S.selected.has(id)) {
    S.selected.delete(id);
    S.anchor = id;
  } else {
    S.selected.add(id);
    S.anchor = id;
  }
  S.focus = id;
  showSelection();
}

function chosen() {
  if (S.selected.size) return [...S.selected];
  return S.focus ? [S.focus] : [];
}

// ------------------------------------------------------------------ actions
function replaceItems(cards) {
  const byId = new Map(cards.map((c) => [c.id, c]));
  S.items = S.items.map((item) => byId.get(item.id) || item);
  for (const [id, item] of byId) {
    const old = document.querySelector(`#grid .card[data-id="${CSS.escape(id)}"]`);
    if (old && S.view !== "clusters") old.replaceWith(card(item, cropButtons(item)));
  }
}

function showCounts(counts) {
  if (!counts || !S.summary) return;
  Object.assign(S.summary, { accepted: counts.accepted, rejected: counts.rejected });
  const rejected = Object.values(counts.rejected).reduce((a, b) => a + b, 0);
  $("n-rejected").textContent = `(${rejected})`;
  $("n-accepted").textContent = `(${counts.accepted})`;
  for (const button of document.querySelectorAll("#reasons button")) {
    button.querySelector(".n").textContent = ` ${counts.rejected[button.dataset.reason] || 0}`;
  }
}

async function decideCrops(ids, action, isUndo) {
  if (!ids.length) { status("select crops first (click, Shift+click, or a)"); return; }
  const reason = action === "demote" ? ($("demote-reason").value.trim() || "manual") : null;
  try {
    const data = await api("/api/crops", { items: ids.map((id) => ({ id, action, reason })) });
    return finishCrops(data, isUndo, `${action === "clear" ? "withdrew" : action + "d"} ${ids.length}`);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

function finishCrops(data, isUndo, text) {
  if (!isUndo) pushUndo({ kind: "crops", previous: data.previous, text });
  replaceItems(data.items);
  showCounts(data.counts);
  S.selected.clear();
  showSelection();
  status(isUndo ? `undone: ${text}` : `${text}; applied at the next make dataset`);
}

async function restoreCrops(previous, text) {
  try {
    const data = await api("/api/crops", { items: previous });
    finishCrops(data, true, text);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

async function decideClusters(ids, action, isUndo, previousItems, text) {
  if (!ids.length && !previousItems) { status("select a face in a cluster first"); return; }
  const items = previousItems || ids.map((id) => ({ id, action }));
  try {
    const data = await api("/api/clusters", { items });
    const label = text || `${{ split: "split out", keep: "kept", clear: "rejoined" }[action]} ${ids.length}`;
    if (!isUndo) pushUndo({ kind: "clusters", previous: data.previous, text: label });
    for (const cluster of data.clusters) {
      S.clusters = S.clusters.map((c) => (c.index === cluster.index ? cluster : c));
      const old = document.querySelector(`#grid .cluster[data-index="${cluster.index}"]`);
      if (old) old.replaceWith(clusterNode(cluster));
    }
    S.selected.clear();
    showSelection();
    status(isUndo ? `undone: ${label}` : `${label}; applied at the next make dataset`);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

function pushUndo(entry) {
  S.undo.push(entry);
  $("undo").disabled = false;
  $("undo").textContent = `undo ${entry.text}`;
}

function undo() {
  const entry = S.undo.pop();
  $("undo").disabled = !S.undo.length;
  $("undo").textContent = S.undo.length ? `undo ${S.undo[S.undo.length - 1].text}` : "undo";
  if (!entry) return;
  if (entry.kind === "crops") restoreCrops(entry.previous, entry.text);
  else decideClusters([], null, true, entry.previous, entry.text);
}

// ------------------------------------------------------------------ source viewer
function openSource(item) {
  const viewer = $("viewer");
  const img = $("viewer-img");
  const [w, h] = item.source_size || [0, 0];
  const place = (node, box) => {
    node.hidden = !(box && w && h);
    if (node.hidden) return;
    node.style.left = `${(100 * box[0]) / w}%`;
    node.style.top = `${(100 * box[1]) / h}%`;
    node.style.width = `${(100 * box[2]) / w}%`;
    node.style.height = `${(100 * box[3]) / h}%`;
  };
  if (item.source) img.src = item.source; else img.removeAttribute("src");
  place($("viewer-box"), item.box);
  place($("viewer-crop"), item.crop_box);
  const meta = $("viewer-meta");
  meta.replaceChildren();
  const add = (label, value, link) => {
    if (value === null || value === undefined || value === "") return;
    const text = Array.isArray(value) ? value.join(" ") : String(value);
    const href = link ? httpUrl(text) : null;
    const dd = el("dd");
    dd.append(href ? el("a", { href, rel: "noreferrer noopener", target: "_blank", text }) : document.createTextNode(text));
    meta.append(el("dt", { text: label }), dd);
  };
  add("crop", item.id);
  add("state", item.decision ? (item.decision === "accepted" ? "accepted" : `rejected: ${item.reason}`) : null);
  add("title", item.title);
  add("character", item.character);
  add("tags", item.tags);
  add("site", item.site);
  add("url", item.url, true);
  add("page", item.page_url, true);
  add("box", item.box ? item.box.join(", ") : null);
  add("values", Object.entries(item.values || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(" · "));
  viewer.hidden = false;
  viewer.dataset.id = item.id;
}

function closeSource() {
  $("viewer").hidden = true;
}

function itemById(id) {
  for (const item of S.items) if (item.id === id) return item;
  for (const cluster of S.clusters) for (const m of cluster.members) if (m.id === id) return m;
  return null;
}

// ------------------------------------------------------------------ wiring
function keys(event) {
  if (event.target.matches("input, select, textarea")) return;
  const key = event.key;
  if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") { event.preventDefault(); undo(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (key === "Escape") { if (!$("viewer").hidden) closeSource(); else { S.selected.clear(); showSelection(); } return; }
  const views = { 1: "rejected", 2: "accepted", 3: "clusters" };
  if (views[key]) { S.view = views[key]; S.offset = 0; S.sort = null; load(); return; }
  if (key === "a") { for (const id of visibleIds()) S.selected.add(id); showSelection(); return; }
  if (key === "u") { undo(); return; }
  if (key === "]") { go(1); return; }
  if (key === "[") { go(-1); return; }
  if (key === "o") { const item = itemById(chosen()[0]); if (item) openSource(item); return; }
  if (S.view === "rejected" && key === "p") decideCrops(chosen(), "promote");
  if (S.view === "accepted" && key === "d") decideCrops(chosen(), "demote");
  if (S.view === "clusters" && key === "s") decideClusters(chosen(), "split");
  if (S.view === "clusters" && key === "k") decideClusters(chosen().slice(-1), "keep");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#views button")) {
    button.addEventListener("click", () => { S.view = button.dataset.view; S.offset = 0; S.sort = null; load(); });
  }
  $("sort").addEventListener("change", () => { S.sort = $("sort").value; S.offset = 0; load(); });
  $("desc").addEventListener("change", () => { S.desc = $("desc").checked; S.offset = 0; load(); });
  $("select-all").addEventListener("click", () => { for (const id of visibleIds()) S.selected.add(id); showSelection(); });
  $("select-none").addEventListener("click", () => { S.selected.clear(); showSelection(); });
  $("promote").addEventListener("click", () => decideCrops(chosen(), "promote"));
  $("demote").addEventListener("click", () => decideCrops(chosen(), "demote"));
  $("undo").addEventListener("click", undo);
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("viewer-close").addEventListener("click", closeSource);
  $("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) closeSource(); });
  document.addEventListener("keydown", keys);
  const open = readHash();
  load().then(async () => {
    if (open) {
      try { openSource(await api(`/api/crop?id=${encodeURIComponent(open)}`)); } catch (error) { status(String(error.message), true); }
    }
  });
});
