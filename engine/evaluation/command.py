"""``stepedit eval``: render edits on clips with any backend and report what changed.

Only argparse is imported at module level: the ``stepedit`` command builds its parser on
every invocation, and the evaluation stack loads only when ``eval`` runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.backends.base import Backend

__all__ = ["add_arguments", "run"]

_LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``eval`` options to ``parser``."""
    parser.add_argument(
        "clips",
        nargs="+",
        type=Path,
        metavar="CLIP",
        help="audio files or folders; transcripts from <clip>.txt or a manifest.csv beside them",
    )
    parser.add_argument(
        "--edits",
        nargs="+",
        metavar="EDIT",
        help="type[:option][*iterations][@seconds,...], e.g. emotion:happy*2 "
        "paralinguistic:Laughter@1.5 (default: every emotion, style and nonverbal tag)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("stepedit-eval"),
        help="report folder (default: %(default)s)",
    )
    parser.add_argument("--no-similarity", action="store_true", help="skip speaker similarity")
    parser.add_argument("--no-asr", action="store_true", help="skip the word error rate")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def run(args: argparse.Namespace, backend: Backend) -> int:
    """Runs the evaluation described by ``args`` on ``backend``; returns the exit status.

    0 when every render succeeded, 1 when some failed (their rows say why), 2 for bad
    arguments or unreadable clips.
    """
    from engine.errors import StepEditError
    from engine.evaluation.harness import default_edits, evaluate, find_clips, parse_edit_spec
    from engine.evaluation.report import write_report

    try:
        clips = find_clips(args.clips)
        chosen = [parse_edit_spec(text) for text in args.edits or ()]
    except StepEditError as e:
        _LOG.error("stepedit eval: %s", e)
        return 2
    if not clips:
        _LOG.error("stepedit eval: no audio files found in %s", ", ".join(map(str, args.clips)))
        return 2
    try:
        backend.load()
    except StepEditError as e:
        _LOG.error("stepedit eval: %s", e)
        return 2
    results = evaluate(
        backend,
        clips,
        (lambda clip: chosen) if chosen else (lambda clip: default_edits(backend, clip.duration)),
        similarity=not args.no_similarity,
        asr=not args.no_asr,
        quality=not args.no_dnsmos,
    )
    try:
        report = write_report(results, args.out, plots=not args.no_plots)
    except StepEditError as e:
        _LOG.error("stepedit eval: %s", e)
        return 2
    failed = [r for r in results if r.error]
    for r in failed:
        _LOG.error("%s %s failed: %s", r.clip, r.edit, r.error)
    _LOG.info("report: %s (%d renders, %d failed)", report, len(results) - len(clips), len(failed))
    return 1 if failed else 0
