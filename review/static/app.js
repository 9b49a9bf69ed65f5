// animefaces review: every crawled string goes on the page through textContent or attributes,
// never as HTML; only http(s) URLs become links. Writes carry the start token in a header.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const NO_TOKEN = "no token in the URL: you can look, but writes will be refused (use the URL the app printed)";
const PAGE = { rejected: 100, accepted: 100, clusters: 20, noface: 60, similar: 48, scored: 100 };
const VIEWS = ["rejected", "accepted", "clusters", "noface", "similar", "scored"];
const KEYS = { 1: "rejected", 2: "accepted", 3: "clusters", 4: "noface", 5: "scored" };
const DEMOTE_VIEWS = ["accepted", "similar", "scored"];
const VALUE_KEYS = { likelihood: "likelihood", sharpness: "sharpness", saturation: "saturation", colors: "unique_colors",
  size: "face_side", confidence: "confidence" };
const NOT_RUN = "facecrop runs the verifier only on boxes no other rule rejected (and, with verifier = \"unsure\", "
  + "only below verify_below_confidence): this box was never verified";
const S = {
  view: "rejected", reason: null, sort: null, desc: false, offset: 0,
  q: "", site: "", lo: "", hi: "", image: "", imageName: "", to: "",
  items: [], clusters: [], images: [], similar: null,
  selected: new Set(), anchor: null, focus: null, undo: [], summary: null, loading: 0,
};
const V = { list: [], index: -1, image: null, current: null, zoomed: false };
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
  $("status").title = text;
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

// ------------------------------------------------------------------ naming crops in status lines
function shortId(id) {
  return /^[0-9a-f]{12}_/.test(id || "") ? `${id.slice(0, 6)}…${id.slice(12)}` : String(id);
}

function label(item) {
  const source = item.title ? item.name : item.file || item.name;  // a title reads better than a URL's tail
  return source ? `${shortId(item.id)} (source ${source})` : shortId(item.id);
}

function describe(verb, items) {
  if (items.length === 1) return `${verb} ${label(items[0])}`;
  const named = items.slice(0, 2).map(label).join(", ");
  return `${verb} ${items.length}: ${named}${items.length > 2 ? ` and ${items.length - 2} more` : ""}`;
}

function shortText(verb, items) {
  return items.length === 1 ? `${verb} ${shortId(items[0].id)}` : `${verb} ${items.length}`;
}

// ------------------------------------------------------------------ location: every view and filter is a link
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  S.view = VIEWS.includes(h.get("view")) ? h.get("view") : "rejected";
  S.reason = h.get("reason");
  S.sort = h.get("sort");
  S.desc = h.get("desc") === "1";
  S.offset = Math.max(0, parseInt(h.get("offset") || "0", 10) || 0);
  for (const key of ["q", "site", "lo", "hi", "image", "to"]) S[key] = h.get(key) || "";
  if (S.view === "similar" && !S.to) S.view = "rejected";
  return { open: h.get("open"), show: h.get("show") };
}

function writeHash() {
  const h = new URLSearchParams({ view: S.view });
  if (["rejected", "clusters", "noface"].includes(S.view) && S.reason) h.set("reason", S.reason);
  if (["rejected", "accepted", "noface"].includes(S.view) && S.sort) h.set("sort", S.sort);
  if (S.desc) h.set("desc", "1");
  if (S.offset) h.set("offset", String(S.offset));
  if (S.view === "similar") h.set("to", S.to);
  else for (const key of ["q", "site", "lo", "hi", "image"]) if (S[key]) h.set(key, S[key]);
  if (!$("viewer").hidden && V.current) h.set("open", V.current.id);
  else if (!$("viewer").hidden && V.image) h.set("show", V.image.sha256);
  history.replaceState(null, "", location.pathname + location.search + "#" + h.toString());
}

function filterParams(q) {
  for (const key of ["q", "site", "image", "lo", "hi"]) if (S[key]) q.set(key, S[key]);
  return q;
}

function filtering() {
  return Boolean(S.q || S.site || S.image || S.lo || S.hi);
}

// ------------------------------------------------------------------ summary, tabs, filters, toolbar
function rulesFor(reason) {
  return (S.summary ? S.summary.rules : []).filter((r) => r.reason === reason);
}

function normalise() {
  const s = S.summary;
  if (S.view === "rejected") {
    const reasons = Object.keys(s.rejected);
    const crops = reasons.filter((r) => !(r in s.image_reasons));  // image-level rows have no crop to promote
    const first = filtering() ? "all" : crops[0] || reasons[0] || "all";  // a search looks in every reason
    if (S.reason !== "all" && !reasons.includes(S.reason)) S.reason = first;
  } else if (S.view === "clusters") {
    if (!(S.reason in s.cluster_kinds)) S.reason = null;
  } else if (S.view === "noface") {
    if (!(S.reason in s.image_reasons)) S.reason = null;
  } else {
    S.reason = null;
  }
  if (S.view === "noface") {
    if (!(S.sort in s.image_sorts)) S.sort = "boxes";
  } else if (S.view === "clusters" || S.view === "similar" || S.view === "scored") {
    S.sort = null;  // the discriminator's view has one order: its score
  } else if (!S.sort || (S.view === "accepted" && S.sort === "value") || S.sort === "boxes") {
    S.sort = S.view === "rejected" ? "value" : "likelihood";
  }
}

function showSummary() {
  const s = S.summary;
  const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0);
  $("n-rejected").textContent = `(${rejected})`;
  $("n-accepted").textContent = `(${s.accepted})`;
  $("n-clusters").textContent = `(${s.clusters})`;
  $("n-noface").textContent = `(${s.noface})`;
  showScoredTab(s.scores);
  $("tab-similar").hidden = S.view !== "similar";
  for (const button of document.querySelectorAll("#views button")) button.classList.toggle("on", button.dataset.view === S.view);
  showReasons(s, rejected);
  showSort(s);
  showToolbar();
  showRule(s);
  showScoresFile(s.scores);
}

// ------------------------------------------------------------------ the discriminator's view
function scoresReady(sc) {
  return Boolean(sc.file && !sc.error && !sc.missing && sc.rows);
}

function showScoredTab(sc) {
  $("n-scored").textContent = scoresReady(sc) ? `(${sc.shown})` : "(no scores)";
  $("tab-scored").title = scoresReady(sc) ? `5: ${sc.file}` : `5: ${noScores(sc)}`;
}

function noScores(sc) {
  // why the view is empty, and the command that fills it
  const make = `make one with \u201c${sc.how}\u201d, then reload`;
  if (sc.error) return `${sc.error}; ${make}`;
  if (sc.missing) return `No scores file at ${sc.file} any more: ${make}.`;
  if (sc.file) return `${sc.file} has no score rows: ${make}.`;
  const where = sc.runs_dir ? `no ${sc.runs_dir}/*/scores.jsonl yet` : "no scores file";
  return `No discriminator scores: ${where}. After training (make train), ${make}; `
    + "or start the app with --scores FILE.";
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function scoresLine(sc) {
  const from = `${sc.network || "D"} of ${sc.checkpoint}, step ${sc.step}`
    + (sc.other_checkpoints ? ` (and ${plural(sc.other_checkpoints, "row", "rows")} from other checkpoints)` : "");
  return [`scores: ${sc.file}`, from, `${plural(sc.rows, "face", "faces")} scored`,
    `${plural(sc.unscored, "accepted crop", "accepted crops")} without a score`,
    `${plural(sc.ignored, "score", "scores")} ignored (no longer accepted crops)`].join(" · ");
}

function showScoresFile(sc) {
  const line = $("scores-file");
  line.hidden = S.view !== "scored" || !scoresReady(sc);
  line.textContent = line.hidden ? "" : scoresLine(sc);
  line.title = sc.file || "";
}

function showReasons(s, rejected) {
  const reasons = $("reasons");
  reasons.replaceChildren();
  if (S.view !== "rejected") return;
  for (const [reason, count] of [["all", rejected], ...Object.entries(s.rejected)]) {
    const button = el("button", { type: "button", "data-reason": reason, class: reason === S.reason ? "on" : "",
      title: reason === "all" ? "every reject, whatever its reason" : null },
      el("span", { text: reason === "all" ? "all reasons" : reason }), el("span", { class: "n", text: ` ${count}` }));
    button.addEventListener("click", () => { S.reason = reason; S.offset = 0; S.sort = null; S.lo = S.hi = ""; load(); });
    reasons.append(button);
  }
}

function showSort(s) {
  const sort = $("sort");
  sort.replaceChildren();
  if (S.view === "noface") {
    for (const [key, text] of Object.entries(s.image_sorts)) sort.append(el("option", { value: key, text }));
  } else {
    if (S.view === "rejected") sort.append(el("option", { value: "value", text: "deciding value" }));
    for (const [key, text] of Object.entries(s.sort_keys)) sort.append(el("option", { value: key, text }));
    sort.append(el("option", { value: "id", text: "crop id" }));
  }
  sort.value = S.sort || "";
  $("desc").checked = S.desc;
}

function showToolbar() {
  const sorted = S.view === "rejected" || S.view === "accepted" || S.view === "noface";
  $("sort-label").hidden = !sorted;
  $("desc-label").hidden = !(sorted || S.view === "scored");
  for (const id of ["select-all", "select-none", "selection"]) $(id).hidden = S.view === "noface";
  $("promote").hidden = !(S.view === "rejected" || S.view === "similar");
  $("demote").hidden = $("reason-label").hidden = !DEMOTE_VIEWS.includes(S.view);
  $("pager").hidden = S.view === "similar";
}

function showRule(s) {
  const rule = $("rule");
  if (S.view === "rejected" && S.reason === "all") {
    rule.textContent = "Every reject, whatever its reason; each card says which rule rejected it and which others it also failed.";
  } else if (S.view === "rejected" && S.reason) {
    const parts = rulesFor(S.reason).map((r) => r.op ? `${r.value_key} ${r.op} ${fmt(r.threshold)} (${r.meaning})` : r.meaning);
    rule.textContent = `${S.reason}: ` + (parts.join(" or ") || "a person's reason (demoted)");
  } else if (S.view === "accepted") {
    rule.textContent = "Accepted crops, worst first by the chosen measurement; demote the ones that should not be in the dataset.";
  } else if (S.view === "scored") {
    rule.textContent = "Accepted crops by a trained discriminator's score (its logit), lowest first: the faces it finds "
      + "least like the rest are mostly bad crops (a hand, the back of a head, text, a face cut off). Demote those.";
  } else if (S.view === "clusters") {
    rule.textContent = "Duplicate clusters of the last dedup run, with each face's link to the kept one (dedup's hash distances). "
      + "The face the next run keeps is framed green; \u201cnot a duplicate\u201d keeps a face separately, \u201ckeep this one\u201d changes the kept face.";
  } else if (S.view === "noface") {
    rule.textContent = `Source images where facecrop accepted no face (${s.noface_with_boxes} with rejected boxes, drawn red): `
      + "open one to see every box and promote the face it missed."
      + (s.raw_newer ? " The crawler added images after facecrop's last run: run make dataset, some here are not processed yet." : "");
  } else {
    rule.textContent = "";
  }
}

function setValue(input, value) {
  // a page answered while the person types in another box must not wipe what they are typing
  if (document.activeElement !== input) input.value = value;
}

function showFilters() {
  const s = S.summary;
  $("filters").hidden = S.view === "similar";
  setValue($("q"), S.q);
  const site = $("site");
  site.replaceChildren(el("option", { value: "", text: "every site" }));
  for (const [name, count] of Object.entries(s.sites)) site.append(el("option", { value: name, text: `${name} (${count})` }));
  if (S.site && !(S.site in s.sites)) site.append(el("option", { value: S.site, text: S.site }));
  site.value = S.site;
  showWhy(s);
  showRange(s);
  $("image-chip").hidden = !S.image;
  $("image-name").textContent = S.imageName || S.image.slice(0, 12);
  $("clear-filters").disabled = !filtering() && !(S.reason && (S.view === "clusters" || S.view === "noface"));
}

function showWhy(s) {
  const why = $("why");
  why.replaceChildren();
  $("why-label").hidden = !(S.view === "clusters" || S.view === "noface");
  if (S.view === "clusters") {
    $("why-name").textContent = "link";
    why.append(el("option", { value: "", text: "every link" }));
    for (const [kind, count] of Object.entries(s.cluster_kinds)) why.append(el("option", { value: kind, text: `${s.link_labels[kind]} (${count})` }));
  } else if (S.view === "noface") {
    $("why-name").textContent = "why";
    why.append(el("option", { value: "", text: "every reason" }));
    for (const [reason, meaning] of Object.entries(s.image_reasons)) why.append(el("option", { value: reason, text: reason, title: meaning }));
  }
  why.value = S.reason || "";
}

function rangeName(s) {
  if (S.view === "clusters") return "distance to the kept face";
  if (S.view === "scored") return "D score";
  if (S.view === "noface") return S.sort === "boxes" ? "rejected boxes" : null;
  if (S.sort === "value") return "deciding value";
  return S.sort && S.sort !== "id" ? s.sort_keys[S.sort] : null;
}

function showRange(s) {
  const name = rangeName(s);
  $("range-label").hidden = !name;
  $("range-name").textContent = name || "";
  setValue($("lo"), S.lo);
  setValue($("hi"), S.hi);
}

function showSelection() {
  $("selection").textContent = S.selected.size ? `${S.selected.size} selected` : "";
  for (const card of document.querySelectorAll(".card")) card.classList.toggle("selected", S.selected.has(card.dataset.id));
}

function showCounts(counts) {
  // the reason tabs: within the filter when one is set (a page's `counts`), else the whole set
  if (!S.summary) return;
  const c = counts || S.summary;
  const rejected = Object.values(c.rejected).reduce((a, b) => a + b, 0);
  for (const button of document.querySelectorAll("#reasons button")) {
    const reason = button.dataset.reason;
    button.querySelector(".n").textContent = ` ${reason === "all" ? rejected : c.rejected[reason] || 0}`;
  }
}

function showTotals(counts) {
  // after an action: the header's counts, and the tabs' when no filter narrows them
  if (!counts || !S.summary) return;
  Object.assign(S.summary, { accepted: counts.accepted, rejected: counts.rejected });
  if (counts.noface !== undefined) S.summary.noface = counts.noface;
  if (counts.scored !== undefined) { S.summary.scores.shown = counts.scored; showScoredTab(S.summary.scores); }
  const rejected = Object.values(counts.rejected).reduce((a, b) => a + b, 0);
  $("n-rejected").textContent = `(${rejected})`;
  $("n-accepted").textContent = `(${counts.accepted})`;
  $("n-noface").textContent = `(${S.summary.noface})`;
  if (!filtering()) showCounts(null);
}

// ------------------------------------------------------------------ cards
function valueLine(item) {
  if (S.view === "similar" && item.distance !== undefined) {
    return `${(S.similar && S.similar.hash) || "hash"} ${item.distance} · dHash ${item.dhash_distance}`;
  }
  if (S.view === "scored" && item.score !== undefined) return `D score ${fmt(item.score)}`;
  if (S.view === "clusters") {
    if (item.was_kept) return "the face dedup kept";
    return item.link ? `${item.link.label} · ${S.summary.hashes.kind} ${fmt(item.link.distance)}` : "no link recorded";
  }
  if ((S.view === "rejected" || S.view === "similar") && item.deciding) {
    const d = item.deciding;
    return d.key ? `${d.key} ${fmt(d.value)} ${d.op} ${fmt(d.threshold)}` : (d.meaning || item.reason || "");
  }
  const key = VALUE_KEYS[S.sort] || "likelihood";
  if (key === "likelihood") return item.verified === false && item.has_crop ? "likelihood not run" : `likelihood ${fmt(item.likelihood)}`;
  return `${key} ${fmt((item.values || {})[key])}`;
}

function alsoLine(item) {
  if (S.view === "clusters") return null;
  const also = item.also || [];
  if (also.length) {
    const text = item.decision === "accepted" ? `rules failed: ${also.join(", ")}` : `also: ${also.join(", ")}`;
    return el("div", { class: "also", text, title: "every rule this crop failed: " + (item.failed || []).join(", ") });
  }
  if (item.has_crop && item.verified === false && !valueLine(item).startsWith("likelihood")) {
    return el("div", { class: "also notrun", text: "verifier not run", title: NOT_RUN });
  }
  return null;
}

function stateLine(item) {
  const text = item.decision === "accepted" ? "accepted" : `rejected: ${item.reason}`;
  const span = el("div", { class: "state", text });
  if (item.pending) span.append(el("span", { class: "pending", text: item.override ? ` (${item.override}d; next run)` : " (next run)" }));
  return span;
}

function tooltip(item) {
  return [item.id, pictureName(item), item.character, item.folder_path || item.file, item.url,
    item.source_sha256 && `image ${item.source_sha256}`]
    .filter(Boolean).join("\n");
}

function whoLine(item) {
  const site = item.site && !(item.name || "").startsWith(item.site) ? item.site : null;
  return [item.character, site].filter(Boolean).join(" · ") || "\u00a0";
}

function pictureName(item) {
  // the viewer's and tooltips' full name: site and title (or post, or file)
  return item.site && item.name && !item.name.startsWith(item.site) ? `${item.site}: ${item.name}` : item.name;
}

function card(item, rows, extra) {
  const node = el("div", { class: `card now-${item.decision === "accepted" ? "accepted" : "rejected"}`, "data-id": item.id,
    tabindex: "0", title: tooltip(item) });
  if (item.distance !== undefined) node.dataset.distance = String(item.distance);
  node.append(item.has_crop
    ? el("img", { class: "thumb", loading: "lazy", decoding: "async", src: `/thumb/${encodeURIComponent(item.id)}`, alt: item.id })
    : el("div", { class: "noimg", text: "no crop" }));
  if (item.decision) node.append(stateLine(item), el("div", { class: "value", text: valueLine(item) }));
  node.append(alsoLine(item) || "");
  node.append(el("div", { class: "src", text: item.name || item.id }), el("div", { class: "who", text: whoLine(item) }));
  if (extra) node.append(extra);
  for (const buttons of rows) {
    const row = el("div", { class: "row" });
    for (const [text, cls, handler, title] of buttons) {
      const button = el("button", { type: "button", class: cls, text, title });
      button.addEventListener("click", (event) => { event.stopPropagation(); handler(); });
      row.append(button);
    }
    if (buttons.length) node.append(row);
  }
  node.addEventListener("click", (event) => select(item.id, event));
  node.addEventListener("dblclick", () => openCrop(item));
  node.addEventListener("focus", () => { S.focus = item.id; });
  return node;
}

function findButtons(item, withSimilar) {
  const buttons = [["open", "open", () => openCrop(item), "o: on its source image, every box drawn"]];
  if (withSimilar && item.has_crop) buttons.push(["similar", "similar", () => showSimilar(item.id), "f: nearest faces by dedup's hashes"]);
  if (item.source_sha256) buttons.push(["image", "image", () => thisImage(item), "i: every face of this image"]);
  return buttons;
}

function cropButtons(item) {
  const act = [];
  if (item.has_crop && item.decision !== "accepted") act.push(["promote", "promote", () => decideCrops([item.id], "promote")]);
  if (item.has_crop && item.decision === "accepted") act.push(["demote", "demote", () => decideCrops([item.id], "demote")]);
  return [findButtons(item, !(S.view === "similar" && S.similar && item.id === S.similar.query.id)), act];
}

function cropCard(item) {
  return card(item, cropButtons(item));
}

function renderCrops() {
  const grid = $("grid");
  grid.replaceChildren(...S.items.map(cropCard));
  if (!S.items.length) grid.append(el("p", { class: "howto", text: emptyText() }));
}

function emptyText() {
  const sc = S.summary && S.summary.scores;
  if (S.view === "scored" && !scoresReady(sc)) return noScores(sc);
  if (filtering()) return "nothing matches the filters";
  if (S.view === "scored") return `none of the ${plural(sc.rows, "scored crop is", "scored crops are")} accepted now`;
  return "nothing here";
}

function renderSimilar() {
  const data = S.similar;
  const grid = $("grid");
  const query = cropCard(data.query);
  query.classList.add("query");
  grid.replaceChildren(query, ...data.items.map((item) => {
    const note = item.same_cluster ? `same duplicate cluster${item.link ? ": " + item.link.label : ""}`
      : item.in_dataset ? "in the dataset" : "a dropped duplicate";
    return card(item, cropButtons(item), el("div", { class: "link", text: note }));
  }));
  $("rule").textContent = `Faces nearest to ${label(data.query)} by the ${data.hash} and dHash dedup stored `
    + "(Hamming distance in bits, lower is closer): its own duplicate cluster first, then the nearest faces of the dataset."
    + (data.note ? ` ${data.note}.` : "");
  $("page-info").textContent = `${data.items.length} faces`;
}

// ------------------------------------------------------------------ clusters
function clusterHead(cluster) {
  const byId = new Map(cluster.members.map((m) => [m.id, m]));
  const name = (id) => label(byId.get(id) || { id });
  const n = cluster.members.length;
  const parts = [`${n} faces`, cluster.kinds.join(" + ") || "duplicates"];
  if (cluster.kept_now) {
    const instead = cluster.kept_now !== cluster.kept ? ` instead of ${name(cluster.kept)}` : "";
    parts.push(`keeps ${name(cluster.kept_now)}${instead}: ${cluster.why}`);
  } else {
    parts.push(`no duplicates left: all ${n} faces stay`);
  }
  if (cluster.split_out.length) {
    parts.push(`not a duplicate, kept separately: ${cluster.split_out.map(name).join(", ")} (next run)`);
  }
  return parts.join(" · ");
}

function memberNote(member) {
  if (member.split) return "not a duplicate: kept on its own (next run)";
  if (member.was_kept) return "kept by the last dedup run";
  return member.link ? member.link.detail : "no link recorded in dedup/dropped.jsonl";
}

function clusterNode(cluster) {
  const members = el("div", { class: "members" });
  for (const member of cluster.members) {
    const act = [];
    if (member.split) act.push(["rejoin", "rejoin", () => decideClusters([member.id], "clear")]);
    else act.push(["not a duplicate", "split", () => decideClusters([member.id], "split")]);
    if (!member.kept && !member.split) act.push(["keep this one", "keep", () => decideClusters([member.id], "keep")]);
    const node = card(member, [findButtons(member, true), act], el("div", { class: "link", text: memberNote(member) }));
    node.classList.toggle("kept", member.kept);
    node.classList.toggle("split", member.split);
    members.append(node);
  }
  return el("section", { class: "cluster", "data-cluster": cluster.cluster_id, "data-index": cluster.index },
    el("h2", { text: clusterHead(cluster) }), members);
}

function renderClusters() {
  const grid = $("grid");
  grid.replaceChildren();
  for (const cluster of S.clusters) grid.append(clusterNode(cluster));
  if (!S.clusters.length) {
    grid.append(el("p", { text: filtering() || S.reason ? "no cluster matches the filters" : "no duplicate clusters (run dedup first, or there are none)" }));
  }
}

// ------------------------------------------------------------------ images with no accepted face
function whyLine(image) {
  const boxes = image.boxes.filter((b) => b.box);
  if (image.reason === "rejected_boxes") {
    const reasons = [...new Set(boxes.map((b) => b.reason))].join(", ");
    return `${boxes.length} box${boxes.length === 1 ? "" : "es"} rejected: ${reasons}`;
  }
  if (image.reason === "no_face") return "no face found";
  return `${image.reason}: ${(S.summary.image_reasons || {})[image.reason] || ""}`;
}

function place(node, box, size) {
  const [w, h] = size || [0, 0];
  node.hidden = !(box && w && h);
  if (node.hidden) return;
  node.style.left = `${(100 * box[0]) / w}%`;
  node.style.top = `${(100 * box[1]) / h}%`;
  node.style.width = `${(100 * box[2]) / w}%`;
  node.style.height = `${(100 * box[3]) / h}%`;
}

function boxNode(box, size) {
  const state = box.pending ? "next" : box.decision === "accepted" ? "accepted" : "rejected";
  const text = box.decision === "accepted" ? "accepted" : `${box.reason}${box.pending ? " (next run)" : ""}`;
  const node = el("div", { class: `vbox ${state}`, "data-id": box.id, title: `${box.id}: ${text}` }, el("span", { text }));
  place(node, box.box, size);
  return node;
}

function picture(image, width, height) {
  const pic = el("div", { class: "pic" });
  if (!image.thumb) { pic.append(el("span", { text: "no image file" })); return pic; }
  const [w, h] = image.source_size || [0, 0];
  const scale = w && h ? Math.min(width / w, height / h) : 0;
  const inner = el("div", { class: "inner" });
  inner.style.width = scale ? `${Math.round(w * scale)}px` : `${width}px`;
  inner.style.height = scale ? `${Math.round(h * scale)}px` : `${height}px`;
  const img = el("img", { loading: "lazy", decoding: "async", src: image.thumb, alt: image.name || image.sha256 });
  if (!scale) img.style.objectFit = "contain";
  inner.append(img);
  for (const box of image.boxes) if (box.box) inner.append(boxNode(box, image.source_size));
  pic.append(inner);
  return pic;
}

function imageCard(image) {
  const node = el("div", { class: "imgcard", "data-sha": image.sha256, tabindex: "0",
    title: [image.name, image.folder_path || image.file, image.url, `image ${image.sha256}`].filter(Boolean).join("\n") });
  node.append(picture(image, 192, 160), el("div", { class: "src", text: image.name || image.sha256.slice(0, 12) }),
    el("div", { class: "why", text: whyLine(image) }));
  const row = el("div", { class: "row" });
  const open = el("button", { type: "button", class: "open", text: "open" });
  open.addEventListener("click", (event) => { event.stopPropagation(); openImage(image); });
  row.append(open);
  node.append(row);
  node.addEventListener("click", () => openImage(image));
  return node;
}

function renderImages() {
  const grid = $("grid");
  grid.replaceChildren(...S.images.map(imageCard));
  if (!S.images.length) grid.append(el("p", { text: filtering() || S.reason ? "no image matches the filters" : "every image has an accepted face" }));
}

// ------------------------------------------------------------------ loading
async function load() {
  S.selected.clear();
  S.anchor = null;
  S.loading += 1;
  $("grid").setAttribute("aria-busy", "true");  // until the newest answer is on the page
  try {
    S.summary = await api("/api/summary");
    normalise();
    writeHash();
    showSummary();
    showFilters();
    if (S.view === "clusters") await loadClusters();
    else if (S.view === "noface") await loadImages();
    else if (S.view === "similar") await loadSimilar();
    else if (S.view === "scored") await loadCrops("/api/scores");
    else await loadCrops();
    showSelection();
    status(TOKEN ? "" : NO_TOKEN, !TOKEN);
    if (S.image && !S.imageName) nameImage();
  } catch (error) {
    status(String(error.message || error), true);
  } finally {
    S.loading -= 1;
    if (!S.loading) $("grid").removeAttribute("aria-busy");
  }
}

async function loadCrops(path) {
  const limit = PAGE[S.view];
  const q = filterParams(new URLSearchParams({ desc: S.desc ? "1" : "0", offset: S.offset, limit }));
  if (S.sort) q.set("sort", S.sort);
  if (!path) q.set("view", S.view);
  if (S.view === "rejected") q.set("reason", S.reason);
  const data = await api(`${path || "/api/crops"}?${q}`);
  S.items = data.items;
  renderCrops();
  showCounts(data.counts);
  S.offset = data.offset;
  pager(data.total, data.offset, limit);
}

async function loadClusters() {
  const limit = PAGE.clusters;
  const q = filterParams(new URLSearchParams({ offset: S.offset, limit }));
  if (S.reason) q.set("reason", S.reason);
  const data = await api(`/api/clusters?${q}`);
  S.clusters = data.items;
  renderClusters();
  S.offset = data.offset;
  pager(data.total, data.offset, limit);
}

async function loadImages() {
  const limit = PAGE.noface;
  const q = filterParams(new URLSearchParams({ sort: S.sort, desc: S.desc ? "1" : "0", offset: S.offset, limit }));
  if (S.reason) q.set("reason", S.reason);
  const data = await api(`/api/images?${q}`);
  S.images = data.items;
  renderImages();
  S.offset = data.offset;
  pager(data.total, data.offset, limit);
}

async function loadSimilar() {
  S.similar = await api(`/api/similar?id=${encodeURIComponent(S.to)}&limit=${PAGE.similar}`);
  S.items = [S.similar.query, ...S.similar.items];
  renderSimilar();
}

async function nameImage() {
  try {
    const image = await api(`/api/image?sha=${encodeURIComponent(S.image)}`);
    S.imageName = image.name || image.sha256.slice(0, 12);
  } catch (error) {
    S.imageName = `${S.image.slice(0, 12)} (no such image)`;
  }
  $("image-name").textContent = S.imageName;
}

function pager(total, offset, limit) {
  const last = Math.min(total, offset + limit);
  const matching = filtering() || (S.reason && (S.view === "clusters" || S.view === "noface")) ? " matching" : "";
  $("page-info").textContent = total ? `${offset + 1}–${last} of ${total}${matching}` : "0";
  $("prev").disabled = offset <= 0;
  $("next").disabled = last >= total;
  $("pager").dataset.total = String(total);
}

function go(delta) {
  if (S.view === "similar") return;
  const limit = PAGE[S.view];
  const next = S.offset + delta * limit;
  const total = parseInt($("pager").dataset.total || "0", 10);
  if (next < 0 || next >= total) return;
  S.offset = next;
  load().then(() => window.scrollTo(0, 0));
}

function switchView(view) {
  S.view = view;
  S.offset = 0;
  S.sort = null;
  S.lo = S.hi = "";
  if (view !== "rejected") S.reason = null;
  load();
}

function showSimilar(id) {
  closeViewer(true);
  S.to = id;
  S.view = "similar";
  S.offset = 0;
  load().then(() => window.scrollTo(0, 0));
}

function thisImage(item) {
  closeViewer(true);
  S.image = item.source_sha256 || item.sha256;
  S.imageName = item.file || item.name || "";
  if (S.view === "noface" || S.view === "similar") S.view = "rejected";
  if (S.view === "rejected") S.reason = "all";
  S.offset = 0;
  S.lo = S.hi = "";
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

function itemById(id) {
  for (const item of S.items) if (item.id === id) return item;
  for (const cluster of S.clusters) for (const m of cluster.members) if (m.id === id) return m;
  return null;
}

// ------------------------------------------------------------------ actions
const VERBS = { promote: "promoted", demote: "demoted", clear: "withdrew the decision on" };

function replaceItems(cards) {
  const byId = new Map(cards.map((c) => [c.id, c]));
  S.items = S.items.map((item) => {
    const fresh = byId.get(item.id);
    return fresh ? { ...item, ...fresh } : item;
  });
  if (S.view === "clusters" || S.view === "noface") return;
  for (const item of S.items) {
    const old = byId.has(item.id) && document.querySelector(`#grid .card[data-id="${CSS.escape(item.id)}"]`);
    if (!old) continue;
    const node = cropCard(item);
    for (const cls of ["query"]) node.classList.toggle(cls, old.classList.contains(cls));
    const note = old.querySelector(".link");
    if (note) node.insertBefore(note, node.querySelector(".row"));
    old.replaceWith(node);
  }
}

async function decideCrops(ids, action, isUndo) {
  if (!ids.length) { status("select crops first (click, Shift+click, or a)"); return; }
  const reason = action === "demote" ? ($("demote-reason").value.trim() || "manual") : null;
  try {
    const data = await api("/api/crops", { items: ids.map((id) => ({ id, action, reason })) });
    return finishCrops(data, isUndo, VERBS[action]);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

function finishCrops(data, isUndo, verb) {
  if (!isUndo) pushUndo({ kind: "crops", previous: data.previous, text: shortText(verb, data.items) });
  replaceItems(data.items);
  showTotals(data.counts);
  S.selected.clear();
  showSelection();
  const text = describe(verb, data.items);
  status(isUndo ? `undone: ${text}` : `${text}; applied at the next make dataset`);
  if (!$("viewer").hidden) refreshViewer();
  return data;
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
    const verb = { split: "split out", keep: "kept", clear: "rejoined" }[action];
    const named = ids.map((id) => itemById(id) || { id });
    const long = text || describe(verb, named);
    if (!isUndo) pushUndo({ kind: "clusters", previous: data.previous, text: shortText(verb, named) });
    for (const cluster of data.clusters) {
      S.clusters = S.clusters.map((c) => (c.index === cluster.index ? cluster : c));
      const old = document.querySelector(`#grid .cluster[data-index="${cluster.index}"]`);
      if (old) old.replaceWith(clusterNode(cluster));
    }
    S.selected.clear();
    showSelection();
    status(isUndo ? `undone: ${long}` : `${long}; applied at the next make dataset`);
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
  if (entry.kind === "crops") restoreCrops(entry.previous, "restored");
  else decideClusters([], null, true, entry.previous, entry.text);
}

// ------------------------------------------------------------------ viewer: the source image, every box on it
function viewerList() {
  // what previous / next walk through: the page as the grid shows it
  if (S.view === "noface") return S.images.map((image) => ({ sha: image.sha256 }));
  if (S.view === "clusters") return S.clusters.flatMap((c) => c.members.map((m) => ({ id: m.id, sha: m.source_sha256 })));
  return S.items.map((item) => ({ id: item.id, sha: item.source_sha256 }));
}

function openCrop(item) {
  V.list = viewerList();
  const index = V.list.findIndex((entry) => entry.id === item.id);
  if (index < 0) V.list = [{ id: item.id, sha: item.source_sha256 }];
  showEntry(Math.max(0, index));
}

function openImage(image) {
  V.list = viewerList();
  const index = V.list.findIndex((entry) => entry.sha === image.sha256);
  if (index < 0) V.list = [{ sha: image.sha256 }];
  showEntry(Math.max(0, index));
}

async function showEntry(index) {
  const entry = V.list[index];
  if (!entry) return;
  V.index = index;
  try {
    const image = entry.sha ? await api(`/api/image?sha=${encodeURIComponent(entry.sha)}`) : null;
    let current = image && entry.id ? image.boxes.find((b) => b.id === entry.id) : null;
    if (!current && entry.id) current = await api(`/api/crop?id=${encodeURIComponent(entry.id)}`);
    if (!current && image) current = image.boxes.find((b) => b.box) || null;
    drawViewer(image, current);
  } catch (error) {
    status(String(error.message || error), true);
  }
}

function refreshViewer() {
  if (V.index >= 0 && V.list[V.index]) {
    if (V.current) V.list[V.index] = { ...V.list[V.index], id: V.current.id };
    showEntry(V.index);
  }
}

function drawViewer(image, current) {
  V.image = image;
  V.current = current;
  const size = (image && image.source_size) || (current && current.source_size);
  const img = $("viewer-img");
  const source = (image && image.source) || (current && current.source);
  if (source) { if (img.getAttribute("src") !== source) img.src = source; } else img.removeAttribute("src");
  const boxes = $("viewer-boxes");
  boxes.replaceChildren();
  for (const box of (image ? image.boxes : []).filter((b) => b.box)) {
    const node = boxNode(box, size);
    node.addEventListener("click", (event) => { event.stopPropagation(); drawViewer(V.image, box); });
    boxes.append(node);
  }
  place($("viewer-box"), current && current.box, size);
  place($("viewer-crop"), current && current.crop_box, size);
  viewerMeta(image, current);
  viewerButtons(current);
  $("viewer").hidden = false;
  $("viewer").dataset.id = current ? current.id : "";
  fitViewer();
  writeHash();
}

function viewerButtons(current) {
  const crop = current && current.has_crop;
  $("viewer-promote").disabled = !(crop && current.decision !== "accepted");
  $("viewer-demote").disabled = !(crop && current.decision === "accepted");
  $("viewer-similar").disabled = !crop;
  $("viewer-image").disabled = !(V.image || (current && current.source_sha256));
  $("viewer-prev").disabled = V.index <= 0;
  $("viewer-next").disabled = V.index >= V.list.length - 1;
  $("viewer-pos").textContent = V.list.length > 1 ? `${V.index + 1} / ${V.list.length}` : "";
}

function viewerMeta(image, item) {
  const meta = $("viewer-meta");
  meta.replaceChildren();
  const add = (name, value, link, cls) => {
    if (value === null || value === undefined || value === "") return;
    const text = Array.isArray(value) ? value.join(" ") : String(value);
    const href = link ? httpUrl(text) : null;
    const dd = el("dd", { class: cls });
    dd.append(href ? el("a", { href, rel: "noreferrer noopener", target: "_blank", text }) : document.createTextNode(text));
    meta.append(el("dt", { text: name }), dd);
  };
  const src = item || image || {};
  add("picture", pictureName(src));
  add("file", src.folder_path || src.file);
  add("title", src.title);
  add("character", src.character);
  add("tags", src.tags);
  add("site", src.site);
  add("url", src.url, true);
  add("page", src.page_url, true);
  add("image", (image && image.sha256) || src.source_sha256);
  if (image) add("faces", image.boxes.filter((b) => b.box).map((b) => (b.decision === "accepted" ? "accepted" : b.reason)).join(", ") || "none found");
  if (!item) { if (image) add("no face", whyLine(image)); return; }
  add("crop", item.id);
  add("state", item.decision ? (item.decision === "accepted" ? "accepted" : `rejected: ${item.reason}`) + (item.pending ? " (next run)" : "") : null);
  add("rules failed", (item.failed || []).join(", ") || (item.has_crop ? "none" : null));
  if (item.has_crop) add("likelihood", item.verified === false ? "verifier not run" : fmt(item.likelihood), false, item.verified === false ? "notrun" : null);
  add("box", item.box ? item.box.join(", ") : null);
  add("values", Object.entries(item.values || {}).filter(([k]) => k !== "likelihood").map(([k, v]) => `${k} ${fmt(v)}`).join(" · "));
}

function fitViewer() {
  const img = $("viewer-img");
  const viewport = $("viewer-viewport");
  const stage = $("viewer-stage");
  const size = (V.image && V.image.source_size) || (V.current && V.current.source_size);
  const w = (size && size[0]) || img.naturalWidth || 0;  // the manifest's size: known before the image loads
  const h = (size && size[1]) || img.naturalHeight || 0;
  if (!w || !h) { stage.style.width = stage.style.height = ""; return; }
  stage.style.width = stage.style.height = "0px";  // measured without a zoomed image's scrollbars
  viewport.classList.toggle("zoomed", V.zoomed);
  const fit = Math.min((viewport.clientWidth - 16) / w, (viewport.clientHeight - 16) / h);
  const scale = V.zoomed ? Math.max(1, 2 * fit) : fit;
  stage.style.width = `${Math.round(w * scale)}px`;
  stage.style.height = `${Math.round(h * scale)}px`;
}

function zoom(event) {
  const viewport = $("viewer-viewport");
  const stage = $("viewer-stage");
  const rect = stage.getBoundingClientRect();
  const fx = event && rect.width ? (event.clientX - rect.left) / rect.width : 0.5;
  const fy = event && rect.height ? (event.clientY - rect.top) / rect.height : 0.5;
  V.zoomed = !V.zoomed;
  fitViewer();
  viewport.scrollLeft = fx * stage.offsetWidth - viewport.clientWidth / 2;
  viewport.scrollTop = fy * stage.offsetHeight - viewport.clientHeight / 2;
}

function closeViewer(quiet) {
  if ($("viewer").hidden) return;
  $("viewer").hidden = true;
  V.zoomed = false;
  if (!quiet) {
    writeHash();
    if (S.view === "noface") load();  // a promote may have given an image its face
  }
}

function viewerStep(delta) {
  const next = V.index + delta;
  if (next >= 0 && next < V.list.length) showEntry(next);
}

function viewerAct(action) {
  if (V.current && V.current.has_crop) decideCrops([V.current.id], action);
}

// ------------------------------------------------------------------ keys, help, wiring
function toggleHelp(show) {
  $("help-overlay").hidden = show === undefined ? !$("help-overlay").hidden : !show;
}

function viewerKeys(key) {
  if (key === "Escape") closeViewer();
  else if (key === "ArrowLeft") viewerStep(-1);
  else if (key === "ArrowRight") viewerStep(1);
  else if (key === "p") viewerAct("promote");
  else if (key === "d") viewerAct("demote");
  else if (key === "z") zoom(null);
  else if (key === "f" && V.current && V.current.has_crop) showSimilar(V.current.id);
  else if (key === "i" && (V.image || V.current)) thisImage(V.image || V.current);
  else return false;
  return true;
}

function gridKeys(key) {
  const focused = () => itemById(chosen()[0]);
  if (key === "Escape") { S.selected.clear(); showSelection(); }
  else if (KEYS[key]) switchView(KEYS[key]);
  else if (key === "/") $("q").focus();
  else if (key === "a") { for (const id of visibleIds()) S.selected.add(id); showSelection(); }
  else if (key === "]") go(1);
  else if (key === "[") go(-1);
  else if (key === "o") { const item = focused(); if (item) openCrop(item); }
  else if (key === "f") { const item = focused(); if (item && item.has_crop) showSimilar(item.id); }
  else if (key === "i") { const item = focused(); if (item) thisImage(item); }
  else if (key === "p" && (S.view === "rejected" || S.view === "similar")) decideCrops(chosen(), "promote");
  else if (key === "d" && DEMOTE_VIEWS.includes(S.view)) decideCrops(chosen(), "demote");
  else if (key === "s" && S.view === "clusters") decideClusters(chosen(), "split");
  else if (key === "k" && S.view === "clusters") decideClusters(chosen().slice(-1), "keep");
  else return false;
  return true;
}

function keys(event) {
  if (event.target.matches("input, select, textarea")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const key = event.key;
  if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") { event.preventDefault(); undo(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (key === "?") { toggleHelp(); return; }
  if (!$("help-overlay").hidden) { if (key === "Escape") toggleHelp(false); return; }
  if (key === "u") { undo(); return; }
  const handled = $("viewer").hidden ? gridKeys(key) : viewerKeys(key);
  if (handled && (key === "/" || key.startsWith("Arrow"))) event.preventDefault();
}

function applyFilter(change) {
  change();
  S.offset = 0;
  load();
}

let searchTimer = null;

function wireFilters() {
  const q = $("q");
  const search = () => { clearTimeout(searchTimer); if (q.value.trim() !== S.q) applyFilter(() => { S.q = q.value.trim(); }); };
  q.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 300); });
  q.addEventListener("keydown", (event) => { if (event.key === "Enter") search(); });
  $("site").addEventListener("change", () => applyFilter(() => { S.site = $("site").value; }));
  $("why").addEventListener("change", () => applyFilter(() => { S.reason = $("why").value || null; }));
  for (const id of ["lo", "hi"]) {
    $(id).addEventListener("change", () => applyFilter(() => { S[id] = $(id).value.trim(); }));
  }
  $("image-clear").addEventListener("click", () => applyFilter(() => { S.image = S.imageName = ""; }));
  $("clear-filters").addEventListener("click", () => applyFilter(() => {
    S.q = S.site = S.lo = S.hi = S.image = S.imageName = "";
    if (S.view === "clusters" || S.view === "noface") S.reason = null;
  }));
}

function wireViewer() {
  $("viewer-close").addEventListener("click", () => closeViewer());
  $("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) closeViewer(); });
  $("viewer-stage").addEventListener("click", (event) => zoom(event));
  $("viewer-img").addEventListener("load", fitViewer);
  window.addEventListener("resize", () => { if (!$("viewer").hidden) fitViewer(); });
  $("viewer-prev").addEventListener("click", () => viewerStep(-1));
  $("viewer-next").addEventListener("click", () => viewerStep(1));
  $("viewer-promote").addEventListener("click", () => viewerAct("promote"));
  $("viewer-demote").addEventListener("click", () => viewerAct("demote"));
  $("viewer-similar").addEventListener("click", () => { if (V.current) showSimilar(V.current.id); });
  $("viewer-image").addEventListener("click", () => thisImage(V.image || V.current));
}

function wire() {
  for (const button of document.querySelectorAll("#views button")) {
    button.addEventListener("click", () => { if (button.dataset.view !== "similar") switchView(button.dataset.view); });
  }
  $("sort").addEventListener("change", () => applyFilter(() => { S.sort = $("sort").value; S.lo = S.hi = ""; }));
  $("desc").addEventListener("change", () => applyFilter(() => { S.desc = $("desc").checked; }));
  $("select-all").addEventListener("click", () => { for (const id of visibleIds()) S.selected.add(id); showSelection(); });
  $("select-none").addEventListener("click", () => { S.selected.clear(); showSelection(); });
  $("promote").addEventListener("click", () => decideCrops(chosen(), "promote"));
  $("demote").addEventListener("click", () => decideCrops(chosen(), "demote"));
  $("undo").addEventListener("click", undo);
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("help-button").addEventListener("click", () => toggleHelp());
  $("help-close").addEventListener("click", () => toggleHelp(false));
  $("help-overlay").addEventListener("click", (event) => { if (event.target === $("help-overlay")) toggleHelp(false); });
  wireFilters();
  wireViewer();
  document.addEventListener("keydown", keys);
  window.addEventListener("hashchange", () => { closeViewer(true); readHash(); load(); });  // a link or an edited URL
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  const { open, show } = readHash();
  load().then(async () => {
    try {
      if (open) openCrop(await api(`/api/crop?id=${encodeURIComponent(open)}`));
      else if (show) openImage({ sha256: show });
    } catch (error) {
      status(String(error.message || error), true);
    }
  });
});
