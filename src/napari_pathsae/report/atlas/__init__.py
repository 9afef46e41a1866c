"""A cohort's feature atlas: a static, self-contained HTML site made from the feature index.

``ATLAS/index.html`` lists every feature (search by number, label or gene; sort by any column);
``ATLAS/features/f<N>.html`` is one feature's page; ``tiles/`` holds the real tiles, each cut once from
its slide however many pages show it; ``maps/`` the small maps of where a feature fires on its top slides.
Written into a staging folder and renamed, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ...data.cohort import Cohort
from ...data.feature_index import FeatureIndex
from ...data.outputs import atomic_folder
from ...errors import PathsaeError
from ...names import feature_index
from .images import cut_tiles, draw_maps, group_by_slide
from .pages import feature_page, feature_row, index_page

#: Shown per page: top tiles, quantile bands × samples per band, slides with a map.
TOP_SHOWN, BANDS, PER_BAND, MAP_SLIDES = 12, 5, 4, 3


def write_atlas(
    cohort: Cohort,
    index: FeatureIndex,
    sae_dir: str | Path,
    output: str | Path,
    overwrite: bool = False,
    features: list[int] | None = None,
    genes_table: str | Path | None = None,
) -> dict:
    """Write the atlas of ``features`` (default: all) to ``output``; returns counts and seconds. ``index`` comes
    from ``engine.cohort.cohort_index``, which has checked it against the cohort's slides and the SAE's weights."""
    from ...engine.session import read_labels, read_stability

    start = time.perf_counter()
    sae_dir = Path(sae_dir)
    recorded = index.meta.get("sae_record", {}).get("weights_sha256")
    chosen = list(range(index.n_features)) if features is None else sorted(set(features))
    bad = [f for f in chosen if not 0 <= f < index.n_features]
    if bad:
        raise PathsaeError(f"feature {bad[0]} is not in the index (it has f0–f{index.n_features - 1})")
    labels = read_labels(sae_dir)
    stability_table = read_stability(sae_dir, recorded) if recorded else None
    stability = (
        {int(i): float(r) for i, r in stability_table["stability_r"].items()} if stability_table is not None else {}
    )
    genes = _genes(genes_table, index.n_features)
    stores = dict(zip(cohort.names, cohort.store_paths, strict=True))
    pages, wanted_tiles, wanted_maps = {}, [], {}
    for f in chosen:
        top = index.top(f)[:TOP_SHOWN]
        bands = index.quantile_samples(f, BANDS, PER_BAND)
        wanted_tiles += [(s, t) for s, t, _, _ in top] + [(s, t) for band in bands for s, t, _, _ in band]
        slides = list(dict.fromkeys(s for s, _, _, _ in index.top(f)))[:MAP_SLIDES]
        for s in slides:
            wanted_maps.setdefault(s, []).append(f)
        pages[f] = slides
    with atomic_folder(output, overwrite) as folder:
        (folder / "features").mkdir()
        tiles, notes = cut_tiles(group_by_slide(wanted_tiles), stores, folder)
        maps = draw_maps(wanted_maps, stores, str(index.meta["sae"]), index.top_value[:, 0], folder)
        rows = []
        for f in chosen:
            label, stab = labels.get(f, ""), stability.get(f)
            gene_rows = genes.get(f, []) if genes_table is not None else None
            rows.append(feature_row(index, f, label, stab, [g["gene"] for g in gene_rows or []]))
            html = feature_page(index, f, label, stab, gene_rows, pages[f], TOP_SHOWN)
            (folder / "features" / f"f{f}.html").write_text(html, encoding="utf-8")
        subtitle = (
            f"{len(chosen)} features of {index.meta.get('sae')} ({index.meta.get('encoder')}) over "
            f"{int(index.n_tiles.sum()):,} tiles of {len(index.slides)} slides"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
        (folder / "index.html").write_text(index_page(rows, "Feature atlas", subtitle), encoding="utf-8")
    return {"features": len(chosen), "tiles": tiles, "maps": maps, "notes": notes,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def _genes(path: str | Path | None, n_features: int, per_feature: int = 10) -> dict[int, list[dict]]:
    """Each feature's strongest genes from a `pathsae correlate` table (one store's or a cohort's)."""
    if path is None:
        return {}
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PathsaeError(f"{path}: not a readable correlation table ({exc})") from None
    if not {"feature", "gene", "r", "q"} <= set(table.columns):
        raise PathsaeError(f"{path}: expected `pathsae correlate`'s table (feature, gene, r, q)")
    if "slide" not in table.columns:
        table["slide"] = ""
    table["f"] = table["feature"].map(feature_index)
    table = table[table["f"].between(0, n_features - 1)].sort_values("q")
    return {int(f): rows.head(per_feature).to_dict("records") for f, rows in table.groupby("f")}


__all__ = ["write_atlas"]
