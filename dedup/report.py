"""DATA/dedup/report.html: every duplicate cluster side by side, the kept face marked.

One static page that opens from disk: images are facecrop's crops, referenced by relative path
(so the page adds no files of its own) and lazily loaded, and off-screen clusters skip layout
(`content-visibility`), so thousands of clusters stay responsive. Everything that came from
the web (titles, characters, URLs) is HTML-escaped, and only http(s) URLs become links.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from pipeline import atomic
from pipeline.layout import Layout

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
.summary td{padding:0 1em 0 0}
.cluster{content-visibility:auto;contain-intrinsic-size:auto 170px;background:#fff;border:1px solid #ddd;
  border-radius:6px;margin:.6em 0;padding:.5em}
.members{display:flex;flex-wrap:wrap;gap:.5em}
figure{margin:0;width:140px;font-size:11px;word-break:break-all}
figure img{width:128px;height:128px;object-fit:cover;border:3px solid #ccc;display:block}
figure.kept img{border-color:#1a7f37}
figure.kept figcaption b{color:#1a7f37}
.why{color:#555}
.hidden{display:none}
"""

SCRIPT = """
const box=document.getElementById('filter'), kind=document.getElementById('kind');
function apply(){const q=box.value.toLowerCase(), k=kind.value; let shown=0;
 for(const c of document.querySelectorAll('.cluster')){
  const ok=(!q||c.dataset.text.includes(q))&&(!k||c.dataset.kinds.split(' ').includes(k));
  c.classList.toggle('hidden',!ok); if(ok)shown++;}
 document.getElementById('shown').textContent=shown;}
box.addEventListener('input',apply); kind.addEventListener('change',apply);
// report.html#q=TEXT opens filtered, so a face can be linked to from elsewhere.
const m=location.hash.match(/^#q=(.*)$/); if(m){box.value=decodeURIComponent(m[1]);}
apply(); document.body.dataset.ready='1';
"""


@dataclasses.dataclass
class MemberView:
    id: str
    path: str  # the crop, relative to DATA
    kept: bool
    relation: str  # "kept", "exact duplicate", "near duplicate (pHash 3, dHash 5)"
    face_area: int
    sharpness: float
    source: dict[str, Any]  # raw manifest row, may be empty


@dataclasses.dataclass
class ClusterView:
    cluster_id: str
    why: str
    members: list[MemberView]


def safe_url(url: Any) -> str | None:
    """Only http(s) URLs become links; anything else (javascript:, data:) is shown as text."""
    if not isinstance(url, str):
        return None
    return url if urlsplit(url.strip()).scheme.lower() in ("http", "https") else None


def _member(m: MemberView, crop_link: Callable[[str], str]) -> str:
    e = html.escape
    meta = m.source.get("meta") if isinstance(m.source.get("meta"), dict) else {}
    lines = [f"<b>{e(m.relation)}</b>", e(m.id), f"face {m.face_area} px², sharpness {m.sharpness:.0f}"]
    for key in ("title", "character"):
        if meta.get(key):
            lines.append(f"{key}: {e(str(meta[key]))}")
    if m.source.get("site"):
        lines.append(f"site: {e(str(m.source['site']))}")
    for key in ("page_url", "url"):
        raw = m.source.get(key)
        if raw:
            link = safe_url(raw)
            text = e(str(raw))
            lines.append(f'<a href="{e(link)}" rel="noreferrer">{text}</a>' if link else text)
    cls = "kept" if m.kept else "dup"
    src = e(quote(crop_link(m.path)))
    return (
        f'<figure class="{cls}"><img loading="lazy" src="{src}" alt="{e(m.id)}">'
        f"<figcaption>{'<br>'.join(lines)}</figcaption></figure>"
    )


def _searchable(c: ClusterView) -> str:
    parts = []
    for m in c.members:
        meta = m.source.get("meta") if isinstance(m.source.get("meta"), dict) else {}
        parts += [
            m.id,
            str(meta.get("title", "")),
            str(meta.get("character", "")),
            str(m.source.get("url", "")),
        ]
    return " ".join(parts).lower()


def render(clusters: list[ClusterView], counts: dict[str, Any], crop_link: Callable[[str], str]) -> str:
    """The page; `crop_link` turns a crop's DATA-relative path into a link from the page."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in counts.items())
    body = []
    for c in clusters:
        kinds = sorted(
            {"exact" if m.relation.startswith("exact") else "near" for m in c.members if not m.kept}
        )
        body.append(
            f'<section class="cluster" id="c{e(c.cluster_id)}" data-kinds="{e(" ".join(kinds))}" '
            f'data-text="{e(_searchable(c))}"><div>cluster {e(c.cluster_id)} · {len(c.members)} faces · '
            f'<span class="why">kept: {e(c.why)}</span></div><div class="members">'
            + "".join(_member(m, crop_link) for m in c.members)
            + "</div></section>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'><title>dedup report</title>"
        f"<style>{STYLE}</style></head><body><h1>Duplicate clusters</h1>"
        f'<table class="summary">{rows}</table>'
        f'<p><input id="filter" placeholder="filter by id, title, character, URL" size=40> '
        '<select id="kind"><option value="">all</option><option value="exact">with exact duplicates</option>'
        '<option value="near">with near duplicates</option></select> '
        f'showing <span id="shown">{len(clusters)}</span> of {len(clusters)} clusters. '
        "The kept face has a green frame. Images are the source-resolution crops.</p>"
        + "".join(body)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(layout: Layout, clusters: list[ClusterView], counts: dict[str, Any]) -> None:
    page = layout.dedup_report
    atomic.write_text(page, render(clusters, counts, lambda rel: layout.link(page, rel)))
