import time
from contextlib import contextmanager

from cinetune.bench import interleaved_medians


def test_interleaved_medians_time_round_robin_and_keep_setup_off_the_clock():
    order = []

    def case(name, setup_s, run_s):
        @contextmanager
        def make():
            time.sleep(setup_s)  # e.g. attaching an adapter: not timed
            yield lambda: (order.append(name), time.sleep(run_s))
        return make

    t = interleaved_medians({"a": case("a", 0.05, 0.0), "b": case("b", 0.0, 0.02)}, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4  # every round runs every case once, warm-up round included
    assert t["a"] < 0.01 <= 0.02 <= t["b"] < 0.05
