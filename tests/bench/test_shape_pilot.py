"""The shape pilot's levers: each is a valid config that differs from the common recipe only where it says."""

from __future__ import annotations

import dataclasses

from cinetune.bench.shape_pilot import LEVERS, lever_config


def _flat(cfg) -> dict:
    out = {}
    for k, v in dataclasses.asdict(cfg).items():
        out.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
    return out


def test_every_lever_changes_only_its_own_fields():
    base = _flat(lever_config("baseline"))
    for name, (_, over) in LEVERS.items():
        changed = {k for k, v in _flat(lever_config(name)).items() if base[k] != v} - {"output_dir"}
        declared = {f"{k}.{kk}" for k, v in over.items() if isinstance(v, dict) for kk in v} | \
            {k for k, v in over.items() if not isinstance(v, dict)}
        assert changed == declared, name
    assert lever_config("baseline").data.max_objects == 1 and lever_config("baseline").data.max_actors == 0


def test_world_pilot_levers_change_only_their_own_fields():
    from cinetune.bench import world_pilot

    base = _flat(world_pilot.lever_config("video-uniform"))
    assert base["task"] == "dit" and base["init"] == "" and base["data.max_actors"] == 3  # from scratch, all kinds
    for name, (_, over) in world_pilot.LEVERS.items():
        changed = {k for k, v in _flat(world_pilot.lever_config(name)).items() if base[k] != v} - {"output_dir"}
        declared = {f"{k}.{kk}" for k, v in over.items() if isinstance(v, dict) for kk in v} | \
            {k for k, v in over.items() if not isinstance(v, dict)}
        assert changed == declared, name
