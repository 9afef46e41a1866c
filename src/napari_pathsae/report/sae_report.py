"""Writes an SAE's report card (analysis/sae_report.py computes it): the report folder, and beside the
weights SAELens's sparsity file and the per-feature stability the feature browser reads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from ..analysis.sae_report import STABILITY_FILE, SAEReport
from ..data.outputs import atomic_folder, atomic_output
from ..models.sae.formats import SPARSITY, sae_weights_sha256, write_sparsity
from .figures import sae_report_figure


def write_report(report: SAEReport, folder: str | Path, sae_dir: str | Path, overwrite: bool = False) -> list[str]:
    """REPORT/ (report.json, report.png, features.csv) written whole; beside the weights, SAELens's
    sparsity.safetensors when absent, and the per-feature stability.csv the feature browser reads (when
    absent, or with ``overwrite``). Returns a note when a different stability.csv was kept."""
    with atomic_folder(folder, overwrite) as staging:
        (staging / "report.json").write_text(json.dumps(report.summary, indent=2))
        report.features.to_csv(staging / "features.csv", index=False)
        sae_report_figure(report, staging / "report.png")
    notes, sae_dir = [], Path(sae_dir)
    sparsity = sae_dir / SPARSITY
    if not sparsity.exists():  # train writes it from the training tiles; an SAE from elsewhere gets these stores'
        with atomic_output(sparsity) as temp:
            write_sparsity(temp, torch.from_numpy(report.features["density"].to_numpy()))
    if "stability_r" in report.features:
        table = report.features[["feature", "stability_r", "stability_match", "stable", "comparable"]].copy()
        table["sae_weights_sha256"] = sae_weights_sha256(sae_dir)  # the browser ignores it for other weights
        target = sae_dir / STABILITY_FILE
        if target.exists() and not overwrite:
            if not table.round(6).equals(pd.read_csv(target).round(6).astype(table.dtypes.to_dict())):
                notes.append(f"{target} (another seed's stability) kept as it was: --overwrite replaces it")
        else:
            with atomic_output(target, overwrite=True) as temp:
                table.to_csv(temp, index=False)
    return notes
