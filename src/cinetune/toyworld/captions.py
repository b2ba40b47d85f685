"""Caption grammar: varied natural sentences (synonyms, word order) that state every visible attribute."""

from __future__ import annotations

import re

import numpy as np

from .roster import IDENTITIES
from .scene import ActorSpec, ObjectSpec, SceneSpec

# One word per shape: a synonym splits the little signal a shape word carries between several text features.
SHAPE_WORDS = {s: [s] for s in ("circle", "square", "triangle", "star", "heart", "ring", "cross")}
MOTION_PHRASES = {
    "left": ["moves to the left", "slides left", "drifts leftward"],
    "right": ["moves to the right", "slides right", "drifts rightward"],
    "up": ["moves up", "rises", "floats upward"],
    "down": ["moves down", "sinks", "falls slowly"],
    "bounce": ["bounces", "hops up and down", "is bouncing"],
    "orbit": ["circles around", "moves in a circle", "orbits"],
    "grow": ["grows", "gets bigger", "expands"],
    "shrink": ["shrinks", "gets smaller", "contracts"],
    "rotate": ["spins", "rotates", "turns around"],
    "still": ["stays still", "rests in place", "does not move"],
}
ACTION_PHRASES = {
    "walk": {1: ["walks to the right", "strolls right"], -1: ["walks to the left", "strolls left"]},
    "wave": ["waves", "waves a hand", "is waving"],
    "jump": ["jumps", "jumps up and down", "is jumping"],
    # portrait scenes
    "turn": ["turns their head", "looks to the side"],
    "nod": ["nods", "nods their head"],
    "talk": ["talks", "is talking"],
    "walk past": {1: ["walks past to the right"], -1: ["walks past to the left"]},
}
PERSON_WORDS = ["a person", "a figure", "someone"]
BACKGROUND_PHRASES = {
    "flat": ["a {c} background", "a plain {c} backdrop"],
    "gradient": ["a {c} to {c2} gradient", "a background fading from {c} to {c2}"],
    "stripes": ["a striped {c} and {c2} background", "{c} and {c2} stripes"],
    "checker": ["a {c} and {c2} checkerboard", "a checkered {c} and {c2} background"],
}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def object_phrase(o: ObjectSpec, rng: np.random.Generator) -> str:
    size = "" if o.size == "medium" else o.size + " "
    return f"a {size}{o.colour} {_pick(rng, SHAPE_WORDS[o.shape])} {_pick(rng, MOTION_PHRASES[o.motion])}"


def actor_phrase(a: ActorSpec, rng: np.random.Generator, describe: bool = True) -> str:
    ident = IDENTITIES[a.identity]
    action = ACTION_PHRASES[a.action]
    verb = _pick(rng, action[a.facing] if isinstance(action, dict) else action)
    who = _pick(rng, PERSON_WORDS)
    if not describe:
        return f"{who} {verb}"
    article = "an" if ident.shirt[0] in "aeiou" else "a"
    desc = ident.description(eyes=a.framing == "portrait")
    return f"{who} with {desc} in {article} {ident.shirt} shirt {verb}"


def caption(spec: SceneSpec, variant: int = 0, describe_people: bool = True) -> str:
    """Caption of `spec`; `variant` picks another phrasing of the same content. describe_people=False leaves out
    what the people look like ("a person talks"): identity customisation trains and is measured with such captions,
    so the identity has to come from the reference faces, not from the words."""
    rng = np.random.default_rng([spec.seed, 7919, variant])
    parts = [actor_phrase(a, rng, describe_people) for a in spec.actors] + [object_phrase(o, rng) for o in spec.objects]
    order = rng.permutation(len(parts))
    parts = [parts[i] for i in order]
    joiners = [" while ", " and ", ", as "]
    body = parts[0]
    for p in parts[1:]:
        body += _pick(rng, joiners) + p
    bg = spec.background
    bgp = _pick(rng, BACKGROUND_PHRASES[bg.kind]).format(c=bg.colour, c2=bg.colour2)
    pan = ""
    if bg.pan:
        pan = _pick(rng, [", the camera pans {d}", " as the camera pans {d}"]).format(d="right" if bg.pan > 0 else "left")
    if rng.random() < 0.5:
        text = f"{body} on {bgp}{pan}."
    else:
        text = f"On {bgp}, {body}{pan}."
    text = re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)  # "an orange square", "An orange background"
    return text[0].upper() + text[1:]
