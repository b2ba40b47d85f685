"""Toy-world attribute labels: from a scene spec (training targets) and from a prompt (alignment metric)."""

from __future__ import annotations

import re

import numpy as np

from ..toyworld.captions import ACTION_PHRASES, MOTION_PHRASES, SHAPE_WORDS
from ..toyworld.roster import (ACTIONS, BACKGROUND_COLOURS, COLOUR_NAMES, HAIR_COLOURS, IDENTITIES, MOTIONS,
                               PORTRAIT_ACTIONS, SHAPES, SKIN_TONES)
from ..toyworld.scene import SceneSpec

# Attribute groups the toy video encoder predicts. All are multi-label (a clip holds several objects and people),
# except the background's main colour. Hair and skin are the people's (bald people state no hair colour).
GROUPS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": COLOUR_NAMES,
    "motion": MOTIONS,
    "action": ACTIONS + PORTRAIT_ACTIONS,
    "hair": tuple(HAIR_COLOURS),
    "skin": tuple(SKIN_TONES),
    "background": tuple(BACKGROUND_COLOURS),
}
MULTI_LABEL = ("shape", "colour", "motion", "action", "hair", "skin")


def scene_labels(spec: SceneSpec) -> dict[str, np.ndarray]:
    """Targets: multi-hot float32 vectors for MULTI_LABEL groups, a class index (int64 scalar) for the background."""
    out = {g: np.zeros(len(GROUPS[g]), np.float32) for g in MULTI_LABEL}
    for o in spec.objects:
        out["shape"][SHAPES.index(o.shape)] = 1
        out["colour"][COLOUR_NAMES.index(o.colour)] = 1
        out["motion"][MOTIONS.index(o.motion)] = 1
    for a in spec.actors:
        ident = IDENTITIES[a.identity]
        out["action"][GROUPS["action"].index(a.action)] = 1
        out["skin"][GROUPS["skin"].index(ident.skin)] = 1
        if ident.hair_style != "bald":
            out["hair"][GROUPS["hair"].index(ident.hair_colour)] = 1
    out["background"] = np.int64(GROUPS["background"].index(spec.background.colour))
    return out


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_SHAPE_OF = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_MOTIONS_RE = _alternation(p for ps in MOTION_PHRASES.values() for p in ps)
_OBJECT = re.compile(rf"\b({_alternation(COLOUR_NAMES)}) ({_alternation(_SHAPE_OF)})\b(?: ({_MOTIONS_RE}))?")
_MOTION_OF = {p: m for m, ps in MOTION_PHRASES.items() for p in ps}
_ACTION_OF = {p: a for a, ps in ACTION_PHRASES.items()
              for p in (ps[1] + ps[-1] if isinstance(ps, dict) else ps)}
_ACTION = re.compile(rf"\bshirt ({_alternation(_ACTION_OF)})")
_SKIN = re.compile(rf"\b({_alternation(SKIN_TONES)}) skin\b")
_HAIR = re.compile(rf"\b(?:short|long|spiky) ({_alternation(HAIR_COLOURS)}) hair\b")
_BACKGROUND = re.compile(rf"\b(?:an?|on|plain|from|striped|checkered) ({_alternation(BACKGROUND_COLOURS)})\b")


def prompt_labels(prompt: str) -> dict[str, list[int]]:
    """Attributes a toy-world prompt states, as indices into GROUPS (empty lists for groups it does not mention).

    Objects are read as "<colour> <shape word> [<motion phrase>]", people as "<tone> skin", "<style> <colour> hair"
    and "... shirt <action phrase>", and the background's main colour from its phrase, following the caption grammar in `toyworld.captions`."""
    text = prompt.lower()
    out: dict[str, list[int]] = {g: [] for g in GROUPS}

    def add(group: str, name: str) -> None:
        i = GROUPS[group].index(name)
        if i not in out[group]:
            out[group].append(i)

    for colour, word, motion in _OBJECT.findall(text):
        add("colour", colour)
        add("shape", _SHAPE_OF[word])
        if motion:
            add("motion", _MOTION_OF[motion])
    for phrase in _ACTION.findall(text):
        add("action", _ACTION_OF[phrase])
    for tone in _SKIN.findall(text):
        add("skin", tone)
    for hair in _HAIR.findall(text):
        add("hair", hair)
    bg = _BACKGROUND.search(text)
    if bg:
        add("background", bg.group(1))
    return out
