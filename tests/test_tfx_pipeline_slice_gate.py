"""The sliced gate of the blessing (tfx_pipeline.blessing, issue 23 section 2): a slice fails only when it is big
enough and its drop below the baseline is beyond the noise; its options, flags and JSON; the summary's table."""
import json

import numpy as np
import pandas as pd
import pytest

from gru4rec_tf.evaluation import slices
from tfx_pipeline import blessing, slice_summary

N_SESSIONS, TARGETS_PER_SESSION = 5000, 4
NEW_ITEMS = np.arange(1000, 1100)  # item IDs 1000.. are the new ones
RULE = dict(thresholds={"recall@20": 0.1, "mrr@20": 0.03}, regression_margin=0.01)


def paired_events(n_new_events: int, candidate_misses: int, seed: int = 0, baseline_new_rank: float = 5.0
                  ) -> pd.DataFrame:
    """5000 sessions of 4 targets; the baseline ranks about 60% of the targets in the top 20; ``n_new_events``
    targets, spread at random, are new items, which the baseline ranks ``baseline_new_rank`` and the candidate 5th
    except ``candidate_misses`` times (rank +inf); otherwise the candidate ranks every target as the baseline."""
    rng = np.random.default_rng(seed)
    n = N_SESSIONS * TARGETS_PER_SESSION
    baseline = np.where(rng.random(n) < 0.6, rng.integers(1, 21, size=n), 50).astype(float)
    frame = pd.DataFrame({"session": np.repeat(np.arange(N_SESSIONS), TARGETS_PER_SESSION),
                          "position": np.tile(np.arange(1, TARGETS_PER_SESSION + 1), N_SESSIONS),
                          "item": rng.integers(0, 500, size=n), "baseline_rank": baseline})
    new_rows = np.sort(rng.choice(n, size=n_new_events, replace=False))
    frame.loc[new_rows, "item"] = rng.choice(NEW_ITEMS, size=n_new_events)
    frame.loc[new_rows, "baseline_rank"] = 5.0
    frame["rank"] = frame["baseline_rank"]
    frame.loc[new_rows, "baseline_rank"] = baseline_new_rank
    frame.loc[rng.permutation(new_rows)[:candidate_misses], "rank"] = np.inf
    return frame


def gate(frame: pd.DataFrame, **options):
    """The blessing of the candidate of ``frame``; item popularity is flat, in an order that puts new and old items
    in every popularity class."""
    items = np.random.default_rng(1).permutation(np.r_[np.arange(500), NEW_ITEMS])
    popularity = pd.Series(np.ones(len(items), dtype=int), index=items)
    table = slices.paired_slice_table(frame, slices.slice_masks(frame, popularity, NEW_ITEMS), cutoffs=(20,),
                                      n_resamples=300, seed=0)
    overall = {name: {m: table["all"][name][m] for m in ("recall@20", "mrr@20")} for name in ("candidate", "baseline")}
    rule = blessing.BlessingOptions(cutoffs=(20,), **RULE, **options)
    return blessing.decide(rule, overall["candidate"], overall["baseline"], slices=table), table


def test_a_candidate_that_fails_only_on_new_items_is_not_blessed_when_that_slice_is_big():
    decision, table = gate(paired_events(n_new_events=150, candidate_misses=150), min_slice_events=100)
    # the average hides it: -150/20000 of Recall@20 overall is within the overall margin
    assert table["all"]["difference"]["recall@20"] == pytest.approx(-150 / 20000)
    assert all(line.startswith("ok") for line in decision.checks[:4]), decision.checks
    assert not decision.blessed and decision.failed_slices == ("target_new",), decision.checks
    assert any(line.startswith("FAIL: slice target_new (150 events): recall@20 -1.0000") for line in decision.checks)


def test_the_same_candidate_is_blessed_when_the_slice_is_below_min_slice_events():
    decision, table = gate(paired_events(n_new_events=150, candidate_misses=150), min_slice_events=151)
    assert table["target_new"]["events"] == 150
    assert decision.blessed and decision.failed_slices == (), decision.checks


def test_a_drop_within_the_noise_of_a_small_slice_is_blessed_and_the_same_drop_on_a_big_one_is_not():
    # 3 of 30 new-item targets missed: a drop of 0.1, five times the margin, but 3 sessions are noise
    decision, table = gate(paired_events(n_new_events=30, candidate_misses=3), min_slice_events=10)
    difference = table["target_new"]["difference"]
    assert difference["recall@20"] == pytest.approx(-0.1) and difference["recall@20_ci"][1] >= -0.02
    assert decision.blessed, decision.checks
    # the same share missed on 3000 new-item targets: beyond the noise
    decision, table = gate(paired_events(n_new_events=3000, candidate_misses=300), min_slice_events=10)
    assert table["target_new"]["difference"]["recall@20_ci"][1] < -0.02
    assert not decision.blessed and "target_new" in decision.failed_slices


def test_a_candidate_that_never_recommends_new_items_fails_the_new_item_floor():
    # the baseline never saw the new items (rank +inf: 0 there), so the regression test cannot see the candidate
    # lose them; the floor (its own figure on known items) does
    healthy, table = gate(paired_events(n_new_events=600, candidate_misses=0, baseline_new_rank=np.inf))
    assert table["target_new"]["baseline"]["recall@20"] == 0.0 and healthy.blessed, healthy.checks
    assert any(line.startswith("ok: slice target_new (600 events): recall@20 1.0000") for line in healthy.checks)
    blind, table = gate(paired_events(n_new_events=600, candidate_misses=600, baseline_new_rank=np.inf))
    assert table["target_new"]["difference"]["recall@20"] == 0.0  # no regression against the baseline's 0
    assert not blind.blessed and blind.failed_slices == ("target_new",), blind.checks
    floor = 0.1 * table["target_known"]["candidate"]["recall@20"]
    assert f"FAIL: slice target_new (600 events): recall@20 0.0000 (family-wise 95% CI [0.0000, 0.0000]) below " \
        f"0.1 x {table['target_known']['candidate']['recall@20']:.4f} on known items = {floor:.4f}" in blind.checks
    assert gate(paired_events(n_new_events=600, candidate_misses=600, baseline_new_rank=np.inf),
                min_new_item_ratio=0.0)[0].blessed  # without the floor it would pass
    # most new items missed: 540 of 600 (recall 0.1 against ~0.6 on known items) fails a floor of 0.3, not of 0.1
    assert not gate(paired_events(600, 540, baseline_new_rank=np.inf), min_new_item_ratio=0.3)[0].blessed
    assert gate(paired_events(600, 540, baseline_new_rank=np.inf), min_new_item_ratio=0.1)[0].blessed


def _drop(events: int, drop: float, se: float) -> dict:
    return {"events": events, "difference": {"recall@20": drop, "recall@20_se": se,
                                             "recall@20_ci": [drop - 1.96 * se, drop + 1.96 * se]}}


def test_the_gate_is_family_wise_over_its_slices():
    rule = blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.1})
    healthy = {f"position_{i}": _drop(1000, 0.0, 0.01) for i in range(8)}
    # one of 9 slices 2.2 standard errors beyond -margin: beyond a single 95% test (1.96), the chance low of one
    # slice in 9 on a healthy day; within the family-wise interval (z = 2.77 for 9 tests)
    table = {**healthy, "position_8+": _drop(1000, -0.042, 0.01)}
    decision = blessing.decide(rule, {"recall@20": 0.5}, {"recall@20": 0.5}, slices=table)
    assert decision.blessed and "(Bonferroni over 9 tests: +-2.77 standard errors)" in decision.checks[-1], \
        decision.checks
    assert table["position_8+"]["difference"]["recall@20_ci"][1] < -0.02  # what the 95% gate refused
    table["position_8+"] = _drop(1000, -0.06, 0.01)  # 4 standard errors beyond: fails
    decision = blessing.decide(rule, {"recall@20": 0.5}, {"recall@20": 0.5}, slices=table)
    assert decision.failed_slices == ("position_8+",) and "family-wise 95% CI [-0.0877, -0.0323]" in \
        decision.checks[-1], decision.checks
    # a table written before the standard errors were recorded is gated on its 95% interval, as then
    old = {"position_1": {"events": 1000, "difference": {"recall@20": -0.042, "recall@20_ci": [-0.06, -0.024]}}}
    assert not blessing.decide(rule, {"recall@20": 0.5}, {"recall@20": 0.5}, slices=old).blessed


def test_popularity_slices_have_their_own_margin():
    rule = dict(cutoffs=(20,), thresholds={"recall@20": 0.1})
    table = {"popularity_head": _drop(1200, -0.06, 0.01), "position_1": _drop(1200, 0.0, 0.01)}
    # a healthy drifting day: the head trades 0.06 for the tail, within the popularity margin 0.1
    assert blessing.decide(blessing.BlessingOptions(**rule), {"recall@20": 0.5}, {"recall@20": 0.5},
                           slices=table).blessed
    assert not blessing.decide(blessing.BlessingOptions(**rule, popularity_slice_margin=0.02), {"recall@20": 0.5},
                               {"recall@20": 0.5}, slices=table).blessed
    table["position_1"] = _drop(1200, -0.06, 0.01)  # the same drop elsewhere is held to slice_regression_margin
    assert blessing.decide(blessing.BlessingOptions(**rule), {"recall@20": 0.5}, {"recall@20": 0.5},
                           slices=table).failed_slices == ("position_1",)


def test_without_a_baseline_there_is_no_sliced_gate():
    table = {"target_new": {"events": 900, "difference": {"recall@20": -1.0, "recall@20_ci": [-1.0, -1.0]}}}
    rule = blessing.BlessingOptions(cutoffs=(20,), thresholds={"recall@20": 0.1})
    assert blessing.decide(rule, {"recall@20": 0.5}, None, slices=table).blessed


@pytest.mark.parametrize("kwargs,message", [
    ({"min_slice_events": 0}, "min_slice_events must be an integer >= 1, got 0"),
    ({"slice_regression_margin": -0.01}, "slice_regression_margin must be a number >= 0, got -0.01"),
    ({"slice_regression_margin": float("nan")}, "slice_regression_margin must be a number >= 0"),
    ({"popularity_slice_margin": -1}, "popularity_slice_margin must be a number >= 0, got -1"),
    ({"min_new_item_ratio": 1.5}, r"min_new_item_ratio must be a number in \[0, 1\], got 1.5"),
    ({"eval_sample_sessions": 0}, "eval_sample_sessions must be an integer >= 1, got 0"),
    ({"bootstrap_resamples": 0}, "bootstrap_resamples must be an integer >= 1, got 0"),
])
def test_bad_slice_gate_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        blessing.BlessingOptions(**kwargs)


def test_options_json_round_trip_and_old_keys():
    rule = blessing.BlessingOptions(min_slice_events=50, slice_regression_margin=0.05, eval_sample_sessions=1000)
    assert blessing.BlessingOptions.from_json(rule.to_json()) == rule
    old = json.loads(blessing.BlessingOptions().to_json())
    for key in ("min_slice_events", "slice_regression_margin", "eval_sample_sessions", "bootstrap_resamples",
                "eval_seed", "popularity_slice_margin", "min_new_item_ratio"):
        del old[key]  # the options JSON of an earlier release (e.g. a compiled spec's exec property)
    assert blessing.BlessingOptions.from_json(json.dumps(old)) == blessing.BlessingOptions()


def test_pipeline_flags_name_the_flag_at_fault():
    from absl import flags  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.commands import option_flags  # pylint: disable=g-import-not-at-top
    values = flags.FlagValues()
    blessing.define_slice_gate_flags(values)
    values(["gru4rec", "--min_slice_events=0", "--slice_regression_margin=0.03"])
    settings = blessing.slice_gate_flag_values(values)
    assert settings == {"min_slice_events": 0, "slice_regression_margin": 0.03, "popularity_slice_margin": 0.1,
                        "min_new_item_ratio": 0.1, "eval_sample_sessions": None}
    with pytest.raises(ValueError, match="^--min_slice_events must be an integer >= 1, got 0$"):
        with option_flags.flag_wording(values):
            blessing.BlessingOptions(**settings)


def test_summary_lines_show_each_slice_with_its_verdict():
    decision, table = gate(paired_events(n_new_events=150, candidate_misses=150), min_slice_events=100)
    payload = json.loads(json.dumps({"slices": table, "slice_gate": {"min_slice_events": 100, "failed_slices": list(
        decision.failed_slices)}}, sort_keys=True))  # as metrics.json: the keys sorted
    text = slice_summary.lines(payload)
    assert text[0].startswith("slices (candidate vs baseline") and "Recall@20 [95% CI]" in text[1]
    rows = {line.split()[0]: line for line in text[2:]}
    assert list(rows) == list(table)
    assert rows["target_new"].endswith("FAIL") and rows["target_known"].endswith("ok")
    assert rows["position_2-3"].split()[1] == "10000" and rows["position_8+"].split()[1:3] == ["0", "-"]
    alone = {name: {"events": row["events"], "candidate": row["candidate"]} for name, row in table.items()}
    assert slice_summary.lines({"slices": alone})[0].startswith("slices (candidate; no baseline")
    assert slice_summary.lines({}) == []
