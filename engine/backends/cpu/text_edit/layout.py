"""The output's layout: kept, moved and re-said stretches, each edge placed in a pause.

- A kept stretch runs from gap to gap. Where words go, the two stretches meet in their
  pauses: deleted words leave the longer of the two pauses there (never their sum), fillers
  the shorter one, at most the speaker's median pause, so their hesitation goes too. The
  join is a 10 ms equal-power cross-fade of quiet audio, never louder than the speech
  around it.
- Moved or reused words are copied from where they were said, gap to gap, and spliced in
  like any other stretch.
- A run of new words takes the place of the words it replaces: from the end of the pause
  before them to the start of the pause after them (for words only added, at the cut point
  between two words), so the take's own pauses stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from engine.backends.cpu.text_edit.take import Take
from engine.errors import EditError
from engine.text.diff import Step, TextPlan, Unit

__all__ = ["FADE_S", "Layout", "Piece", "Said", "lay_out"]

FADE_S = 0.010


@dataclass
class Piece:
    """A stretch of the input, contiguous in its units, placed in the output."""

    steps: list[Step]
    left: float = 0.0
    right: float = 0.0

    @property
    def first(self) -> int:
        assert self.steps[0].unit is not None
        return self.steps[0].unit

    @property
    def last(self) -> int:
        assert self.steps[-1].unit is not None
        return self.steps[-1].unit


@dataclass
class Said:
    """A run of new words, re-said with the smallest span of whole words around them.

    Attributes:
        steps: The new words' steps, in order.
        before: In-place units re-said before them (the rest of a word the change cuts into).
        after: In-place units re-said after them.
        replaced: Units of the take the run stands for: the deleted units between its
            in-place neighbours, then ``before`` and ``after``.
        left: The take's boundary before the span (``Take.gap`` index: the unit before it).
        right: The boundary after the span (the last unit the span stands for).
        left_edge: Where the take is left, in the input (s): the end of the pause before the
            replaced words, or the cut point where words are only added.
        right_edge: Where the take resumes (s).
        lead: The take's leading silence goes before the said words (a span at the start).
        trail: The take's trailing silence goes after them (a span at the end).
        audio: The said words, fitted (mono, at the take's rate).
    """

    steps: list[Step]
    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    left: int = -1
    right: int = -1
    left_edge: float = 0.0
    right_edge: float = 0.0
    lead: bool = False
    trail: bool = False
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def words(self, units: tuple[Unit, ...]) -> list[str]:
        """The words to say, as written."""
        return [
            *(units[u].text for u in self.before),
            *(s.written or s.text for s in self.steps),
            *(units[u].text for u in self.after),
        ]


@dataclass
class Layout:
    """The output in order: pieces of the input, tags (by name) and re-said words."""

    items: list[Piece | str | Said] = field(default_factory=list)

    @property
    def pieces(self) -> list[Piece]:
        return [item for item in self.items if isinstance(item, Piece)]

    @property
    def said(self) -> list[Said]:
        return [item for item in self.items if isinstance(item, Said)]


def _pause(left: float, right: float, median: float, hesitation: bool) -> float:
    """The pause left where words were cut out, between pauses ``left`` and ``right`` (s).

    Words deleted from a text leave the longer of the two pauses (a sentence's end keeps
    its pause, and the two pauses never add up). Fillers take their hesitation with them:
    the shorter of the two is left, at most the speaker's median pause.
    """
    if hesitation:
        return min(left, right, median)
    return max(left, right)


def lay_out(plan: TextPlan, take: Take, hesitation: bool) -> Layout:
    """Groups the plan's steps into pieces (and runs of new words) and places each piece's
    edges in a gap."""
    layout = Layout()
    for step in plan.steps:
        last = layout.items[-1] if layout.items else None
        if step.action == "inserted":
            layout.items.append(step.text)
        elif step.action == "new":
            if isinstance(last, Said):
                last.steps.append(step)
            else:
                layout.items.append(Said([step]))
        elif isinstance(last, Piece) and step.unit == last.last + 1:
            last.steps.append(step)
        else:
            layout.items.append(Piece([step]))
    if layout.said:
        _place_said(layout, plan, take)
    pieces = layout.pieces
    if not pieces and not layout.said:
        raise EditError("the edit removes every word of the take; nothing would remain")
    n = len(plan.units)
    solid = [item for item in layout.items if not isinstance(item, str)]
    head, tail = solid[0], solid[-1]
    lead, trail = take.gap(-1).width, take.gap(n - 1).width
    if isinstance(head, Piece):
        before = take.gap(head.first - 1)
        head.left = 0.0 if head.first == 0 else before.end - min(before.width, lead)
    if isinstance(tail, Piece):
        after = take.gap(tail.last)
        tail.right = take.duration if tail.last == n - 1 else after.start + min(after.width, trail)
    fade = FADE_S
    for x, y in pairwise(solid):
        if isinstance(x, Said) or isinstance(y, Said):
            _edges_beside_said(x, y, take)
            continue
        p, q = x, y
        end, start = take.gap(p.last), take.gap(q.first - 1)
        if q.first == p.last + 1:  # split by a tag only
            p.right = q.left = end.cut
            continue
        budget = _pause(end.width, start.width, take.median_pause, hesitation) + fade
        right_part = min(start.width, budget / 2)
        left_part = min(end.width, budget - right_part)
        right_part = min(start.width, budget - left_part)
        p.right, q.left = end.start + left_part, start.end - right_part
    return layout


def _place_said(layout: Layout, plan: TextPlan, take: Take) -> None:
    """Finds what each run of new words stands for and where it goes in the take.

    A run stands for the deleted units between its in-place neighbours (each unit for the
    first run that claims it), widened to whole words: kept units of a word the change cuts
    into (a Mandarin word split per character) are re-said with it.
    """
    units, n = plan.units, len(plan.units)

    def same_word(a: int, b: int) -> bool:
        return 0 <= a < n and 0 <= b < n and units[a].word == units[b].word

    claimed: set[int] = set()
    items = layout.items
    for k, said in enumerate(items):
        if not isinstance(said, Said):
            continue
        p = next((i for i in reversed(items[:k]) if isinstance(i, Piece) and i.steps), None)
        q = next((i for i in items[k + 1 :] if isinstance(i, Piece) and i.steps), None)
        gone = sorted({u for s in said.steps for u in s.replaces} - claimed)
        claimed.update(gone)
        if gone:
            lo, hi = gone[0], gone[-1]
        else:  # added only: at the boundary after the piece before, or before the next
            hi = p.last if p is not None else (q.first - 1 if q is not None else -1)
            lo = hi + 1
        # Widened over kept units only: a masked or moved neighbour stays what it is.
        while (
            p is not None
            and p.steps
            and p.steps[-1].action == "kept"
            and p.last == lo - 1
            and same_word(lo - 1, lo)
        ):
            said.before.insert(0, p.last)
            p.steps.pop()
            lo -= 1
        while (
            q is not None
            and q.steps
            and q.steps[0].action == "kept"
            and q.first == hi + 1
            and same_word(hi, hi + 1)
        ):
            said.after.append(q.first)
            q.steps.pop(0)
            hi += 1
        said.replaced = [*gone, *said.before, *said.after]
        said.left, said.right = lo - 1, hi
        if said.replaced:
            said.left_edge, said.right_edge = take.gap(lo - 1).end, take.gap(hi).start
        else:
            gap = take.gap(hi)
            # At the take's ends, the silence there stays at the end of the result.
            at = gap.end if hi == -1 else gap.start if hi == n - 1 else gap.cut
            said.left_edge = said.right_edge = at
    layout.items = [i for i in items if not (isinstance(i, Piece) and not i.steps)]
    solid = [i for i in layout.items if not isinstance(i, str)]
    for said in layout.said:
        said.lead = said is solid[0] and said.left == -1
        said.trail = said is solid[-1] and said.right == n - 1


def _edges_beside_said(x: Piece | Said, y: Piece | Said, take: Take) -> None:
    """Places the edge of a piece next to re-said words: where the replaced words were when
    the piece is their neighbour in the take (so the pauses around them stay), else in the
    piece's own pause, at most the speaker's median pause."""
    if isinstance(x, Piece) and isinstance(y, Said):
        gap = take.gap(x.last)
        x.right = y.left_edge if x.last == y.left else gap.start + min(gap.width, take.median_pause)
    elif isinstance(x, Said) and isinstance(y, Piece):
        gap = take.gap(y.first - 1)
        y.left = (
            x.right_edge if y.first - 1 == x.right else gap.end - min(gap.width, take.median_pause)
        )
