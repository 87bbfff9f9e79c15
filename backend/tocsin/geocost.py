"""The bounded cost check of outlines: how often the edges of closed rings cross one another (geo.py refuses outlines
that cross themselves too often, or that overlap too much to tell)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

# Checking an outline for crossings looks at the pairs of edges whose boxes overlap: a few per edge for any real
# outline, all of them for a star. These bound the memory and time of that check (~16 MB a step, ~2 s in all).
_MAX_EDGE_PAIRS = 4_000_000
_EDGE_PAIRS_PER_STEP = 1_000_000
_EXACT_TESTS_PER_STEP = 5_000


def count_self_crossings(rings: Sequence[np.ndarray], limit: int) -> int:
    """How many pairs of non-adjacent edges of the same closed ring (rings without repeated consecutive points) meet,
    counted up to just past `limit`. The work is bounded whatever the shapes: it stops past `limit`, and refuses rings
    whose edges' boxes overlap in more than _MAX_EDGE_PAIRS pairs, within a ring or across rings (GEOS's own validity
    check would take as long)."""
    starts = np.concatenate([r[:-1] for r in rings])
    ends = np.concatenate([r[1:] for r in rings])
    ring_of = np.concatenate([np.full(len(r) - 1, k) for k, r in enumerate(rings)])
    position = np.concatenate([np.arange(len(r) - 1) for r in rings])
    size = np.concatenate([np.full(len(r) - 1, len(r) - 1) for r in rings])
    edges = shapely.linestrings(np.stack([starts, ends], axis=1))
    tree = shapely.STRtree(edges)
    step = max(1, _EDGE_PAIRS_PER_STEP // len(edges))  # one query yields at most step * len(edges) pairs
    candidates = meetings = 0  # each meeting is seen from both of its edges
    for start in range(0, len(edges), step):
        mine, other = tree.query(edges[start : start + step])  # boxes overlap: cheap
        candidates += len(mine)
        if candidates > _MAX_EDGE_PAIRS:
            raise TooIntricate
        mine += start
        gap = np.abs(position[mine] - position[other])
        apart = (ring_of[mine] == ring_of[other]) & (gap > 1) & (gap < size[mine] - 1)  # not itself, no neighbour
        mine, other = mine[apart], other[apart]
        for at in range(0, len(mine), _EXACT_TESTS_PER_STEP):
            pairs = slice(at, at + _EXACT_TESTS_PER_STEP)
            meetings += int(np.count_nonzero(shapely.intersects(edges[mine[pairs]], edges[other[pairs]])))
            if meetings > 2 * limit:
                return meetings // 2
    return meetings // 2


class TooIntricate(Exception):
    """The edges' boxes overlap in too many pairs to count the crossings within the bound."""
