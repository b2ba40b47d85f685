"""Instance preservation: objects should neither appear, vanish, split nor merge from one frame to the next.

Per class, connected components of a label map are matched between adjacent frames by overlap; a component with
no overlapping partner vanished (or appeared), one overlapping several split (several overlapping one merged)."""

from __future__ import annotations

import cv2
import numpy as np

EVENTS = ("appear", "vanish", "split", "merge")


def toy_object_groups(classes: np.ndarray) -> np.ndarray:
    """Toy class map -> 0 background, 1 any shape, 2 person (body or face). Instance events should come from
    objects appearing, vanishing, splitting or merging, not from a segmenter hesitating between two shape
    classes from one frame to the next (which per-class components would count as a vanish plus an appear)."""
    from ..toyworld.roster import CLASSES, SHAPES

    lut = np.zeros(len(CLASSES), np.int64)
    lut[[CLASSES.index(s) for s in SHAPES]] = 1
    lut[[CLASSES.index("person"), CLASSES.index("face")]] = 2
    return lut[np.asarray(classes)]


def _components(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [lab == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]


def event_matrix(labels: np.ndarray, ignore: tuple[int, ...] = (0,), min_area: int = 6) -> np.ndarray:
    """(F-1, 4) event counts per adjacent frame pair, columns EVENTS, of a label video (F,H,W) int (class per pixel).

    Classes in `ignore` (background) are skipped; components under `min_area` pixels are noise; a component that
    touches a frame border may be leaving or entering the view, so its appear/vanish is not counted."""
    lab = np.asarray(labels)
    out = np.zeros((max(len(lab) - 1, 0), len(EVENTS)), np.int64)
    border = np.zeros(lab.shape[1:], bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    for c in np.unique(lab):
        if int(c) in ignore:
            continue
        comps = [_components(f == c, min_area) for f in lab]
        for t, (a, b) in enumerate(zip(comps[:-1], comps[1:])):
            ov = np.array([[(x & y).any() for y in b] for x in a], bool).reshape(len(a), len(b))
            out[t, 0] += sum(1 for j, y in enumerate(b) if not ov[:, j].any() and not (y & border).any())
            out[t, 1] += sum(1 for i, x in enumerate(a) if not ov[i].any() and not (x & border).any())
            out[t, 2] += int((ov.sum(1) > 1).sum())
            out[t, 3] += int((ov.sum(0) > 1).sum())
    return out


def instance_events(labels: np.ndarray, **kwargs) -> dict[str, int]:
    """Total appear / vanish / split / merge events of a label video (see `event_matrix`)."""
    return dict(zip(EVENTS, (int(x) for x in event_matrix(labels, **kwargs).sum(0))))


def instance_preservation(labels: np.ndarray, **kwargs) -> float:
    """Fraction of adjacent frame pairs with no appear/vanish/split/merge event (1.0 = every instance kept)."""
    m = event_matrix(labels, **kwargs)
    return 1.0 if not len(m) else float((m.sum(1) == 0).mean())
