"""Writes evaluation results: a CSV, a Markdown table and PNG plots per clip."""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BackendError
from engine.evaluation.harness import EditResult

__all__ = ["COLUMNS", "write_report"]

_LOG = logging.getLogger(__name__)

# (CSV column, Markdown header, getter, format): what the table shows for each result.
COLUMNS: tuple[tuple[str, str, Any, str], ...] = (
    ("median_f0_hz", "F0 Hz", lambda r: r.measures.median_f0_hz, "{:.0f}"),
    ("f0_change_pct", "F0 Δ%", lambda r: 100 * r.changes["f0_change"], "{:+.1f}"),
    ("f0_range_st", "range st", lambda r: r.measures.f0_range_st, "{:.1f}"),
    ("f0_range_ratio", "range x", lambda r: r.changes["f0_range_ratio"], "{:.2f}"),
    ("speech_rate_syl_s", "syl/s", lambda r: r.measures.speech_rate_syl_s, "{:.2f}"),
    ("tempo_change_pct", "tempo Δ%", lambda r: 100 * r.changes["tempo_change"], "{:+.1f}"),
    ("pause_time_s", "pauses s", lambda r: r.measures.pause_time_s, "{:.2f}"),
    ("pause_ratio", "pauses x", lambda r: r.changes["pause_ratio"], "{:.2f}"),
    ("loudness_lufs", "LUFS", lambda r: r.measures.loudness_lufs, "{:.1f}"),
    ("loudness_change_db", "loud Δ dB", lambda r: r.changes["loudness_db"], "{:+.1f}"),
    ("tilt_db_per_oct", "tilt dB/oct", lambda r: r.measures.tilt_db_per_oct, "{:.1f}"),
    ("tilt_change_db_per_oct", "tilt Δ", lambda r: r.changes["tilt_db_per_oct"], "{:+.1f}"),
    ("voiced_fraction", "voiced", lambda r: r.measures.voiced_fraction, "{:.2f}"),
    ("hnr_db", "HNR dB", lambda r: r.measures.hnr_db, "{:.1f}"),
    ("formant_ratio", "formants x", lambda r: r.changes["formant_ratio"], "{:.2f}"),
    ("duration_s", "dur s", lambda r: r.measures.duration_s, "{:.2f}"),
    ("speaker_similarity", "speaker", lambda r: r.speaker_similarity, "{:.2f}"),
    ("wer_pct", "WER %", lambda r: 100 * r.wer, "{:.1f}"),
    ("dnsmos_ovrl", "DNSMOS", lambda r: r.dnsmos_ovrl, "{:.2f}"),
    ("rtf", "RTF", lambda r: r.rtf, "{:.3f}"),
)
# Bar charts per clip: (changes key or "speaker_similarity", title, baseline, display scale).
_BARS = (
    ("f0_change", "F0 change (%)", 0.0, 100.0),
    ("f0_range_ratio", "F0 range ratio", 1.0, 1.0),
    ("tempo_change", "tempo change (%)", 0.0, 100.0),
    ("loudness_db", "loudness change (dB)", 0.0, 1.0),
    ("tilt_db_per_oct", "tilt change (dB/oct)", 0.0, 1.0),
    ("speaker_similarity", "speaker similarity", 0.0, 1.0),
)


def _value(result: EditResult, getter: Any) -> float:
    try:
        value = float(getter(result))
    except (KeyError, AttributeError, TypeError):
        return math.nan
    return value


def _cell(result: EditResult, getter: Any, fmt: str) -> str:
    value = _value(result, getter)
    return "" if math.isnan(value) else fmt.format(value)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_csv(results: Sequence[EditResult], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "edit", *(c[0] for c in COLUMNS), "error"])
        for r in results:
            values = [_cell(r, getter, "{:.6g}") for _, _, getter, _ in COLUMNS]
            writer.writerow([r.clip, r.edit, *values, r.error])


def _plot_pitch(clip_results: Sequence[EditResult], path: Path) -> None:
    import matplotlib.pyplot as plt

    original = clip_results[0]
    edits = [r for r in clip_results[1:] if r.measures is not None]
    columns = 3
    rows = max(1, math.ceil(len(edits) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 2.6 * rows), squeeze=False, sharey=True
    )
    for ax, result in zip(axes.flat, edits, strict=False):
        for measured, colour, label in ((original, "0.6", "before"), (result, "C3", "after")):
            if measured.measures is None:
                continue
            times, f0 = measured.measures.contour
            ax.plot(times, np.where(f0 > 0, f0, np.nan), color=colour, lw=1, label=label)
        ax.set_title(result.edit, fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(edits) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{original.clip}: pitch contours (Hz, log scale) before and after")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_changes(clip_results: Sequence[EditResult], path: Path) -> None:
    import matplotlib.pyplot as plt

    edits = [r for r in clip_results[1:] if r.measures is not None]
    if not edits:
        return
    fig, axes = plt.subplots(1, len(_BARS), figsize=(3.2 * len(_BARS), 0.28 * len(edits) + 1.5))
    labels = [r.edit for r in edits]
    for ax, (key, title, base, scale) in zip(axes, _BARS, strict=True):
        values = [
            (r.speaker_similarity if key == "speaker_similarity" else r.changes.get(key, math.nan))
            for r in edits
        ]
        ax.barh(labels, [(v - base) * scale for v in values], left=base * scale, color="C0")
        ax.axvline(base * scale, color="0.3", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
        if ax is not axes[0]:
            ax.set_yticklabels([])
    fig.suptitle(f"{clip_results[0].clip}: what each edit changed")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(results: Sequence[EditResult], out_dir: Path, plots: bool = True) -> Path:
    """Writes ``results.csv``, ``report.md`` and (with ``plots``) two PNGs per clip.

    Args:
        results: Rows from :func:`engine.evaluation.harness.evaluate`.
        out_dir: Folder to write into (created if missing).
        plots: Draw the PNGs (needs matplotlib).

    Returns:
        The path of ``report.md``.

    Raises:
        BackendError: when plots are asked for and matplotlib is missing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(results, out_dir / "results.csv")
    clips: dict[str, list[EditResult]] = {}
    for r in results:
        clips.setdefault(r.clip, []).append(r)
    if plots:
        try:
            import matplotlib
        except ImportError as e:
            raise BackendError("plots need matplotlib: pip install matplotlib") from e
        matplotlib.use("Agg")
    lines = [
        "# StepEdit evaluation",
        "",
        "Changes are measured against each clip's original: F0 (smoothed median) and its "
        "5-95 % range in semitones, tempo and pauses from a DTW alignment to the original, "
        "loudness (BS.1770, as the engine writes the file), spectral tilt 1-7.5 kHz, "
        "clearly-voiced share of speech frames, HNR, F1-F3, speaker similarity "
        "(resemblyzer, same speaker about 0.85-0.95), WER of Whisper tiny.en against the "
        "transcript, DNSMOS P.835 overall, and the render's real-time factor.",
        "",
    ]
    header = ["edit", *(c[1] for c in COLUMNS)]
    for clip, rows in clips.items():
        lines += [f"## {clip}", ""]
        if plots:
            stem = _safe(Path(clip).stem)
            _plot_pitch(rows, out_dir / f"{stem}_pitch.png")
            _plot_changes(rows, out_dir / f"{stem}_changes.png")
            lines += [
                f"![pitch contours]({stem}_pitch.png)",
                "",
                f"![changes]({stem}_changes.png)",
                "",
            ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            if r.error:
                lines.append(f"| {r.edit} | failed: {r.error} |" + " |" * (len(COLUMNS) - 1))
                continue
            cells = [_cell(r, getter, fmt) for _, _, getter, fmt in COLUMNS]
            lines.append("| " + " | ".join([r.edit, *cells]) + " |")
        lines.append("")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    _LOG.info("wrote %s", path)
    return path
