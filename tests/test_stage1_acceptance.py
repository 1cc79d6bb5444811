"""Stage 1 with its shipped cuts on real-photo crops with planted defects: recall per type."""

from __future__ import annotations

import json
from collections import Counter

from stage1_planted import PER_TYPE, build_planted_pool

from db.catalog import Catalog

# The one key set here is the pool's size requirement: the crops are sub-megapixel. Every
# detector (noise, blur, blocking, exposure, colour, aspect, duplicates) runs on its default.
CONFIG = "[runner]\nworkers = 2\n[clean]\nmin_short_side = 128\n"


def test_shipped_defaults_catch_every_planted_type_and_spare_clean_photos(tmp_path, cli):
    kinds = build_planted_pool(tmp_path / "pool")
    assert Counter(kinds.values())["clean"] >= 200
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    cat = tmp_path / "c.duckdb"
    for command in (["ingest", tmp_path / "pool"], ["clean"], ["dedup"]):
        code, _, err = cli(*command, "--catalog", cat, "--config", config)
        assert code == 0, err
    with Catalog(cat).connect(read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_replace(i.path, '.*/', ''), i.status, i.reason, c.status, c.reason, "
            "d.status, d.reason, c.detail FROM ingest_outcomes i "
            "LEFT JOIN stage_outcomes c ON c.image_id = i.image_id AND c.stage = 'clean' "
            "LEFT JOIN stage_outcomes d ON d.image_id = i.image_id AND d.stage = 'dedup'"
        ).fetchall()
    assert {r[0] for r in rows} == set(kinds)
    caught, total, reasons = Counter(), Counter(), {}
    flagged_clean = []
    details: dict[str, list[str]] = {}
    for name, i_status, i_reason, c_status, c_reason, d_status, d_reason, c_detail in rows:
        kind = kinds[name]
        total[kind] += 1
        reason = (
            i_reason if i_status != "pass" else c_reason if c_status != "pass" else
            d_reason if d_status != "pass" else None
        )
        details.setdefault(kind, []).append(c_detail or "")
        if reason:
            caught[kind] += 1
            reasons.setdefault(kind, Counter())[reason] += 1
            if kind == "clean":
                flagged_clean.append((name, reason))
    print("\nplanted type     caught  reasons")
    for kind in sorted(total, key=lambda k: (k == "clean", k)):
        print(f"{kind:16s} {caught[kind]:3d}/{total[kind]:<3d} {json.dumps(reasons.get(kind, {}))}")
    for kind, n in total.items():
        if kind != "clean":
            assert n == PER_TYPE
            assert caught[kind] >= 5, f"{kind}: {caught[kind]}/{n} caught"
    assert caught["clean"] <= 0.03 * total["clean"], flagged_clean
    # Each quality defect fails its own measure's cut (the detail lists every failed cut),
    # duplicates are caught by ingest and dedup.
    own_measure = {
        "noise": "noise_sigma", "blur": "detail_ratio", "jpeg": "blockiness",
        "grayscale": "gray_delta", "tiny": "short_side", "aspect": "aspect_ratio",
    }
    for kind, measure in own_measure.items():
        assert sum(f"{measure} " in d for d in details[kind]) >= 5, (kind, details[kind])
    assert reasons["near_duplicate"]["near_duplicate"] >= 5
    assert reasons["exact_copy"]["exact_duplicate"] >= 5
