"""Toy-world vocabulary: shapes, colours, backgrounds, motions, actions and the fixed identity roster."""

from __future__ import annotations

from dataclasses import dataclass

# name -> RGB (0..255). Distinct hues so colour words are learnable and measurable.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (245, 130, 190),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
    "brown": (130, 80, 40),
}
COLOUR_NAMES = tuple(COLOURS)

# Seven silhouettes that stay apart at the DiT's token size (8x8 px at 64x64: VAE 4x, patch 2): each differs from the
# others in its outline or its inside (the ring's hole), not only in corners a few pixels deep. (World v1's diamond and
# hexagon were near-twins of the square and the circle at that size; their class ids went to the heart and the ring.)
SHAPES = ("circle", "square", "triangle", "star", "heart", "ring", "cross")
# Radius as a fraction of min(H, W): the smallest object spans about 3 tokens across (26 px at 64x64 for the circle,
# 22 px for the square's side), and each size is 1.25x the one below, so sizes stay distinguishable.
SIZES = {"small": 0.2, "medium": 0.25, "large": 0.31}

# Muted background colours (kept away from the object palette so objects stay visible).
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 24),
    "grey": (110, 110, 115),
    "navy": (25, 30, 70),
    "dark green": (25, 60, 35),
    "beige": (200, 185, 150),
    "light blue": (160, 190, 215),
    "maroon": (75, 20, 30),
    "olive": (100, 100, 40),
}
BACKGROUND_KINDS = ("flat", "gradient", "stripes", "checker")

MOTIONS = ("left", "right", "up", "down", "bounce", "orbit", "grow", "shrink", "rotate", "still")
ACTIONS = ("walk", "wave", "jump")  # full-body figures
# Portrait scenes' small motions (shoulders-up people; `toyworld.render` draws them in head-radius units).
PORTRAIT_ACTIONS = ("turn", "nod", "talk", "walk past")
SCENE_KINDS = ("objects", "figures", "portrait", "mixed")

# Classes for the class-segmentation map: background, one per shape, person body, face.
CLASSES = ("background",) + SHAPES + ("person", "face")
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}

SKIN_TONES = {"pale": (250, 220, 195), "tan": (215, 165, 120), "brown": (150, 95, 60), "dark": (90, 55, 35)}
HAIR_COLOURS = {"black": (25, 20, 20), "blond": (240, 210, 90), "red": (190, 60, 30), "white": (235, 235, 235),
                "blue": (50, 90, 230), "brown": (110, 65, 30)}
HAIR_STYLES = ("short", "long", "spiky", "bald")
EYE_COLOURS = {"dark": (20, 20, 20), "blue": (30, 90, 230), "green": (30, 160, 60)}
ACCESSORIES = ("none", "glasses", "hat", "bow")
SHIRT_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan")


@dataclass(frozen=True)
class Identity:
    """A cartoon person. Every field is visible in the face or body, so identity is learnable."""

    name: str
    skin: str
    hair_colour: str
    hair_style: str
    eyes: str
    accessory: str
    shirt: str

    def description(self, eyes: bool = False) -> str:
        """Noun phrase for the caption grammar: skin, hair, accessory and (portraits, where eyes are big enough to
        see) the eye colour, e.g. "tan skin, long red hair, green eyes and glasses"."""
        parts = [f"{self.skin} skin", "no hair" if self.hair_style == "bald" else f"{self.hair_style} {self.hair_colour} hair"]
        if eyes:
            parts.append(f"{self.eyes} eyes")
        if self.accessory != "none":
            parts.append({"glasses": "glasses", "hat": "a hat", "bow": "a bow"}[self.accessory])
        return ", ".join(parts[:-1]) + " and " + parts[-1]


def _build_roster() -> tuple[Identity, ...]:
    # A fixed, hand-checked spread: every pair differs in at least two visible attributes.
    rows = [
        ("Ada", "pale", "red", "long", "green", "none", "blue"),
        ("Bo", "dark", "black", "short", "dark", "glasses", "yellow"),
        ("Cy", "tan", "blond", "spiky", "blue", "none", "red"),
        ("Di", "brown", "white", "long", "dark", "bow", "purple"),
        ("Ed", "pale", "black", "bald", "blue", "hat", "green"),
        ("Fay", "tan", "brown", "long", "green", "glasses", "pink"),
        ("Gus", "dark", "blond", "short", "green", "hat", "orange"),
        ("Hal", "brown", "red", "spiky", "dark", "glasses", "cyan"),
        ("Ivy", "pale", "blue", "long", "blue", "bow", "yellow"),
        ("Jo", "dark", "white", "spiky", "blue", "none", "purple"),
        ("Kai", "tan", "black", "short", "green", "bow", "red"),
        ("Lu", "brown", "blond", "bald", "green", "glasses", "blue"),
        ("Mo", "pale", "brown", "spiky", "dark", "hat", "cyan"),
        ("Nia", "dark", "red", "long", "blue", "hat", "green"),
        ("Oz", "tan", "white", "bald", "dark", "bow", "orange"),
        ("Pia", "brown", "blue", "short", "green", "none", "pink"),
        ("Quin", "pale", "blond", "long", "dark", "glasses", "purple"),
        ("Rae", "dark", "brown", "bald", "green", "none", "yellow"),
        ("Sol", "tan", "red", "short", "blue", "hat", "blue"),
        ("Tam", "brown", "black", "long", "blue", "bow", "cyan"),
    ]
    return tuple(Identity(*r) for r in rows)


IDENTITIES: tuple[Identity, ...] = _build_roster()

# OpenPose-18 keypoint order and limb pairs (the 17 standard connections).
KEYPOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
             "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
         (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
BODY_LIMBS = tuple(range(12))  # limbs drawn as the stick body; the rest lie inside the head
# OpenPose's conventional limb colours, so rendered skeletons look like the ones users know.
LIMB_COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
                (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
                (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170))
