from cinetune.methods.scale_adapter.bench import _beats, _ratio, equal_wall_steps


def test_equal_wall_steps_rounds_to_the_quantum():
    assert equal_wall_steps(1465.0, 1.8, 50) == 800  # 814 steps -> 800
    assert equal_wall_steps(10.0, 5.0, 50) == 50  # never zero


def test_adherence_comparisons_respect_the_metric_direction():
    up = {"canny_f1": 0.30, "depth_error": 0.090, "pose_pck": 0.0}
    assert abs(_ratio(0.27, 0.30, True) - 0.9) < 1e-9 and abs(_ratio(0.1, 0.09, False) - 0.9) < 1e-9
    assert _beats({"canny_f1": 0.31, "depth_error": 0.089, "pose_pck": 0.0}, up)  # pose 0 vs 0 is not compared
    assert not _beats({"canny_f1": 0.31, "depth_error": 0.091, "pose_pck": 0.0}, up)
    assert not _beats({"canny_f1": 0.31, "depth_error": 0.089, "pose_pck": 0.0}, dict(up, pose_pck=0.1))
