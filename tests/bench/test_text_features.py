from cinetune.bench.text_features import SWAPS, layer_changes


def test_every_swap_moves_the_text_features_and_the_last_layer_most():
    res = layer_changes()
    assert set(res) == set(SWAPS)
    for attr, per_layer in res.items():
        assert (per_layer > 0).all(), attr
        assert per_layer[-1] == per_layer.max(), attr
    # what the bench reports about motion words: the last layer separates left/right far less than shapes
    assert res["left/right"][-1] < 0.5 * res["shape"][-1]
