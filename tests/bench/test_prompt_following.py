import numpy as np

from cinetune.bench.prompt_following import accuracy, read_back
from cinetune.metrics import chunk_flicker, first_frame_jump
from cinetune.toyworld import RenderConfig, clip_seed, render_clip


def test_readers_recover_what_rendered_clips_show():
    clips = [render_clip(clip_seed(13, i), RenderConfig(), max_objects=1, max_actors=0)[0] for i in range(4)]
    stated = [{"shape": c.spec.objects[0].shape, "colour": c.spec.objects[0].colour,
               "motion": c.spec.objects[0].motion} for c in clips]
    read = read_back([c.video for c in clips])
    acc = accuracy(read, stated)
    assert acc["colour"] == 1.0 and acc["shape"] >= 0.75, acc
    # a video with nothing drawn has no shape to read
    blank = read_back([clips[0].video * 0])[0]
    assert blank["shape"] is None and accuracy([blank], stated[:1])["shape"] == 0.0
    # object area follows the exact masks (generated objects drawn too big or too small show here)
    exact = [float((c.instance > 0).mean()) for c in clips]
    assert np.allclose([r["area"] for r in read], exact, rtol=0.25), (read, exact)
    assert blank["area"] == 0.0 and acc["area"] == np.mean([r["area"] for r in read])
    # and the first-frame jump and chunk flicker of each video (metrics.*; their behaviour is tested there)
    assert acc["first_frame"] == np.mean([first_frame_jump(c.video) for c in clips]) and blank["first_frame"] == 0.0
    assert acc["flicker"] == np.mean([chunk_flicker(c.video) for c in clips]) and blank["flicker"] == 0.0


def test_swapped_captions_change_one_attribute_and_sensitivity_is_measured():
    import torch

    from cinetune.backbones import load_backbone
    from cinetune.bench.prompt_following import held_out_prompts, swapped_captions, word_sensitivity
    from cinetune.toyworld.captions import SHAPE_WORDS

    clips, prompts, stated = held_out_prompts(3)
    shapes = swapped_captions(clips, "shape")
    for c, p, q, s in zip(clips, prompts, shapes, stated):
        assert p != q and len(p.split()) - len(q.split()) in (-1, 0, 1)  # one word or phrase replaced
        assert not any(w in q.split() for w in SHAPE_WORDS[s["shape"]])
        assert s["colour"] in q  # colour and motion untouched
    colours = swapped_captions(clips, "colour")
    assert all(s["colour"] not in q for q, s in zip(colours, stated))
    torch.manual_seed(0)
    sens = word_sensitivity(load_backbone("toy-small"), clips, prompts, sigmas=(0.9,))
    assert set(sens[0.9]) == {"true", "shape", "colour", "motion", "empty"}
    assert all(v > 0 for v in sens[0.9].values())


def test_people_readers_recover_what_rendered_portraits_and_figures_show():
    from cinetune.bench.prompt_following import held_out_people, people_accuracy, read_people

    clips, texts, stated = held_out_people(6, "portrait")
    assert all(c.spec.kind == "portrait" and len(c.spec.actors) == 1 for c in clips)
    assert all(s["skin"] + " skin" in t for t, s in zip(texts, stated))
    acc = people_accuracy(read_people([c.video for c in clips]), stated)
    assert acc["skin"] >= 0.8 and acc["hair"] >= 0.8, acc
    clips, _, stated = held_out_people(6, "figures")
    assert people_accuracy(read_people([c.video for c in clips]), stated)["action"] >= 0.6
    # bald people state no hair colour, and an empty set reads as NaN rather than a number
    assert np.isnan(people_accuracy([{"action": "x", "hair": "red", "skin": "tan"}],
                                    [{"action": "y", "hair": None, "skin": "tan"}])["hair"])
