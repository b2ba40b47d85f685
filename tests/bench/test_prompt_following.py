from cinetune.bench.prompt_following import accuracy, read_back
from cinetune.toyworld import RenderConfig, clip_seed, render_clip


def test_readers_recover_what_rendered_clips_show():
    clips = [render_clip(clip_seed(13, i), RenderConfig(), max_objects=1, max_actors=0)[0] for i in range(4)]
    stated = [{"shape": c.spec.objects[0].shape, "colour": c.spec.objects[0].colour,
               "motion": c.spec.objects[0].motion} for c in clips]
    acc = accuracy(read_back([c.video for c in clips]), stated)
    assert acc["colour"] == 1.0 and acc["shape"] >= 0.75, acc
    # a video with nothing drawn has no shape to read
    blank = read_back([clips[0].video * 0])[0]
    assert blank["shape"] is None and accuracy([blank], stated[:1])["shape"] == 0.0
