"""The atlas's HTML: an index of features (search and sort in the page, no server, no network) and one page
per feature. Everything is relative links and inline SVG; the site opens from the folder as it is."""

from __future__ import annotations

import json
from html import escape

import numpy as np

from ...data.feature_index import FeatureIndex
from ...names import feature_name
from .images import map_file, tile_file

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left}
th{cursor:pointer;background:#f4f4f6;position:sticky;top:0}
.tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{width:128px;font-size:11px;color:#444}
.tile img{width:128px;height:128px;display:block;border:1px solid #ccc}
.band{margin:6px 0}.band b{display:inline-block;width:130px;vertical-align:top}
.maps{display:flex;gap:16px;flex-wrap:wrap}.maps figure{margin:0}
.maps img{width:200px;image-rendering:pixelated;border:1px solid #ccc}.muted{color:#666}
input{font-size:15px;padding:5px 8px;width:360px}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def feature_row(index: FeatureIndex, feature: int, label: str, stability: float | None, genes: list[str]) -> dict:
    """What the index page lists of one feature (also what its search looks through)."""
    best = {"variable": "", "q": None, "stat": None}
    if len(index.variables):
        i = int(np.nanargmin(index.assoc_q[:, feature])) if np.isfinite(index.assoc_q[:, feature]).any() else 0
        best = {"variable": str(index.variables[i]), "q": _round(index.assoc_q[i, feature]),
                "stat": _round(index.assoc_stat[i, feature])}  # fmt: skip
    return {
        "f": feature, "label": label, "density": _round(index.overall_density()[feature]),
        "max": _round(index.top_value[feature, 0]), "stability": _round(stability), "assoc": best["variable"],
        "stat": best["stat"], "q": best["q"], "genes": genes[:5],
    }  # fmt: skip


def _round(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(f"{float(value):.4g}")


INDEX_SCRIPT = """
const rows=JSON.parse(document.getElementById('rows').textContent);
let key=rows.some(r=>r.q!==null)?'q':'f',asc=true;  // the associations first, when any was tested
const body=document.querySelector('#features tbody'),box=document.getElementById('search');
function show(){const q=box.value.trim().toLowerCase().replace(/^f(?=\\d+$)/,'');
 const hit=r=>!q||String(r.f)===q||r.label.toLowerCase().includes(q)||r.genes.some(g=>g.toLowerCase()===q);
 const val=r=>r[key]===null?(asc?Infinity:-Infinity):r[key];
 const tie=(a,b)=>key==='q'?Math.abs(b.stat??0)-Math.abs(a.stat??0):0;  // equal q: the stronger first
 const list=rows.filter(hit).sort((a,b)=>(val(a)>val(b)?1:val(a)<val(b)?-1:tie(a,b))*(asc?1:-1));
 body.innerHTML=list.map(r=>`<tr><td><a href="features/f${r.f}.html">f${r.f}</a></td><td>${esc(r.label)}</td>`+
  `<td>${fmt(r.density)}</td><td>${fmt(r.max)}</td><td>${fmt(r.stability)}</td><td>${esc(r.assoc)}</td>`+
  `<td>${fmt(r.stat)}</td><td>${fmt(r.q)}</td><td>${r.genes.map(esc).join(', ')}</td></tr>`).join('');
 document.getElementById('count').textContent=list.length+' of '+rows.length+' features';}
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function fmt(v){return v===null?'–':v;}
document.querySelectorAll('th[data-key]').forEach(th=>th.onclick=()=>{
 asc=key===th.dataset.key?!asc:th.dataset.key==='f'||th.dataset.key==='q';key=th.dataset.key;show();});
box.oninput=show;const m=location.hash.match(/q=([^&]*)/);if(m)box.value=decodeURIComponent(m[1]);
const s=location.hash.match(/sort=(\\w+)/);if(s){key=s[1];asc=key==='f'||key==='q';}show();
"""


def index_page(rows: list[dict], title: str, subtitle: str) -> str:
    heads = [("f", "feature"), ("label", "label"), ("density", "density"), ("max", "max"),
             ("stability", "stability"), ("assoc", "slide variable"),
             ("stat", "rho / H"), ("q", "q"), ("genes", "genes")]  # fmt: skip
    header = "".join(f'<th data-key="{k}">{escape(t)}</th>' for k, t in heads)
    data = json.dumps(rows).replace("</", "<\\/")
    body = (
        f"<h1>{escape(title)}</h1><p class=muted>{escape(subtitle)}</p>"
        '<p><input id="search" placeholder="search: feature number, label or gene" autofocus> '
        '<span id="count" class=muted></span></p>'
        f'<table id="features"><thead><tr>{header}</tr></thead><tbody></tbody></table>'
        f'<script id="rows" type="application/json">{data}</script><script>{INDEX_SCRIPT}</script>'
    )
    return _page(title, body)


def _tiles(entries, note_value: bool = True) -> str:
    cells = []
    for slide, tile, value, _ in entries:
        src = "../" + tile_file(slide, tile)
        caption = f"{escape(slide)} #{tile}<br>{value:.3g}" if note_value else escape(slide)
        cells.append(
            f'<div class=tile><img src="{src}" alt="{escape(slide)} tile {tile}" loading="lazy">{caption}</div>'
        )
    return f"<div class=tiles>{''.join(cells)}</div>"


def _histogram(index: FeatureIndex, feature: int) -> str:
    counts = index.hist[feature].astype(float)
    zeros = int(index.n_tiles.sum() - index.fired[:, feature].sum())
    if counts.sum() == 0:
        return "<p class=muted>never fires</p>"
    used = np.flatnonzero(counts)
    lo, hi = used[0], used[-1] + 1
    counts, edges = counts[lo:hi], index.hist_edges[lo : hi + 1]
    width, height, bar = 420, 120, 420 / len(counts)
    top = counts.max()
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - c / top * height:.1f}" width="{max(bar - 1, 1):.1f}" '
        f'height="{c / top * height:.1f}" fill="#7b3294">'
        f"<title>{edges[i]:.3g}–{edges[i + 1]:.3g}: {int(c)}</title></rect>"
        for i, c in enumerate(counts)
    )  # fmt: skip
    return (
        f'<svg width="{width}" height="{height + 16}" role="img" aria-label="activation histogram">{bars}'
        f'<text x="0" y="{height + 13}" font-size="11">{edges[0]:.3g}</text>'
        f'<text x="{width}" y="{height + 13}" font-size="11" text-anchor="end">{edges[-1]:.3g} (log scale)</text>'
        f"</svg><p class=muted>{int(counts.sum()):,} tiles fire; {zeros:,} do not</p>"
    )


def _slide_density(index: FeatureIndex, feature: int, limit: int = 25) -> str:
    density = index.density()[:, feature]
    order = np.argsort(-density)[:limit]
    top = max(float(density.max()), 1e-12)
    rows = "".join(
        f"<tr><td>{escape(str(index.slides[s]))}</td><td>{density[s]:.1%}</td>"
        f'<td><svg width="160" height="10"><rect width="{160 * density[s] / top:.1f}" height="10" fill="#e66101"/>'
        f"</svg></td><td>{index.slide_means()[s, feature]:.3g}</td></tr>"
        for s in order
    )
    more = f"<p class=muted>{len(density) - limit} more slides</p>" if len(density) > limit else ""
    return f"<table><tr><th>slide</th><th>density</th><th></th><th>mean</th></tr>{rows}</table>{more}"


def _associations(index: FeatureIndex, feature: int) -> str:
    if not len(index.variables):
        return "<p class=muted>no slide-level variable tested (the manifest's extra columns, ≥ 4 slides)</p>"
    rows = "".join(
        f"<tr><td>{escape(a['variable'])}</td><td>{a['kind']}</td><td>{a['statistic']:.3g}</td>"
        f"<td>{a['p']:.3g}</td><td>{a['q']:.3g}</td></tr>"
        for a in index.associations(feature)
    )
    return (
        "<table><tr><th>variable</th><th>test</th><th>statistic</th><th>p</th><th>q</th></tr>"
        f"{rows}</table><p class=muted>per-slide means; the slide is the unit (permutations over slides)</p>"
    )


def feature_page(index: FeatureIndex, feature: int, label: str, stability: float | None, genes: list | None,
                 map_slides: list[str], top_shown: int) -> str:  # fmt: skip
    """One feature's page; ``genes`` None: no gene table was given, []: the table has no row for this feature."""
    name = feature_name(feature)
    title = f"{name}: {label}" if label else name
    facts = [f"fires on {index.overall_density()[feature]:.2%} of {int(index.n_tiles.sum()):,} tiles"]
    if stability is not None and np.isfinite(stability):
        facts.append(f"cross-seed stability r {stability:.2f}")
    bands = "".join(
        f"<div class=band><b>quantile {i + 1}/{len(q)}<br><span class=muted>"
        f"{(f'{band[0][2]:.3g}–{band[-1][2]:.3g}' if band else 'none')}</span></b>{_tiles(band)}</div>"
        for q in [index.quantile_samples(feature)]
        for i, band in enumerate(q)
    )
    maps = "".join(
        f'<figure><img src="../{map_file(feature, s)}" alt="{escape(s)} map">'
        f"<figcaption>{escape(s)}</figcaption></figure>"
        for s in map_slides
    )
    gene_html = (
        "<table><tr><th>slide</th><th>gene</th><th>r</th><th>q</th></tr>"
        + "".join(
            f"<tr><td>{escape(str(g['slide']))}</td><td>{escape(str(g['gene']))}</td><td>{g['r']:.3g}</td>"
            f"<td>{g['q']:.3g}</td></tr>"
            for g in genes
        )
        + "</table>"
        if genes
        else "<p class=muted>no gene table given (pathsae correlate COHORT, then atlas --genes-table)</p>"
        if genes is None
        else f"<p class=muted>the gene table has no row for {name} (pathsae correlate writes the pairs with "
        "spatial q ≤ 0.05 and the top 10 each way; --all writes every pair)</p>"
    )
    body = (
        f'<p><a href="../index.html">← all features</a></p><h1>{escape(title)}</h1>'
        f"<p class=muted>{escape('; '.join(facts))}</p>"
        f"<h2>Top activating tiles across slides</h2>{_tiles(index.top(feature)[:top_shown])}"
        f"<h2>Samples by activation quantile</h2>{bands}"
        f"<h2>Activation histogram (non-zero)</h2>{_histogram(index, feature)}"
        f"<h2>Where it fires on its top slides</h2><div class=maps>{maps}</div>"
        f"<h2>Density per slide</h2>{_slide_density(index, feature)}"
        f"<h2>Slide-level associations</h2>{_associations(index, feature)}"
        f"<h2>Genes</h2>{gene_html}"
    )
    return _page(title, body)
