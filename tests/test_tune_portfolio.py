"""The portfolio of published settings (gru4rec_tf.tune.portfolio) and the successive-halving plan (fidelities,
schedule): every entry valid in the default space of its loss, skipped with a reason where a space rejects it, one
clear error for an empty portfolio or an --initial_params that does not parse. No training here."""
import json

import pytest

from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.tune import portfolio
from gru4rec_tf.tune.search_space import SearchSpace, default_fixed


def base(loss):
    params = GRU4RecParams.from_string(f"loss={loss},n_sample=2048")
    return params.with_overrides(default_fixed(loss)) if default_fixed(loss) else params


@pytest.mark.parametrize("loss, count", [("bpr-max", 7), ("cross-entropy", 7)])
def test_every_entry_fits_the_default_space_of_its_loss(loss, count):
    entries, skipped = portfolio.portfolio_values(SearchSpace.default(loss), base(loss))
    assert skipped == [] and len(entries) == count
    assert all(set(values) == set(SearchSpace.default(loss).names) for _, values in entries)
    for entry in portfolio.entries_for(loss):
        assert entry.source and entry.loss == loss
        GRU4RecParams.from_string(f"loss={loss},{entry.params}")  # valid parameters as published


def test_entries_are_the_published_values():
    rr = dict(portfolio.portfolio_values(SearchSpace.default("bpr-max"), base("bpr-max"))[0])
    # hidasib/GRU4Rec_PyTorch_Official paramfiles/retailrocket_bprmax_shared_best.py
    assert rr["retailrocket_bprmax_shared_best"] == {
        "layers": 224, "batch_size": 80, "learning_rate": 0.05, "dropout_p_embed": 0.5, "dropout_p_hidden": 0.05,
        "momentum": 0.4, "sample_alpha": 0.4, "bpreg": 1.95, "final_act": "elu-0.5"}
    xe = dict(portfolio.portfolio_values(SearchSpace.default("cross-entropy"), base("cross-entropy"))[0])
    assert xe["rees46_xe_shared_best"] == {"layers": 512, "batch_size": 240, "learning_rate": 0.065,
                                           "dropout_p_embed": 0.45, "dropout_p_hidden": 0.0, "momentum": 0.0,
                                           "sample_alpha": 0.5}
    # configuration B of the benchmarks is the README's RSC15 row
    assert xe["rsc15_xe_readme"]["sample_alpha"] == 0.75 and xe["rsc15_xe_readme"]["learning_rate"] == 0.1


def test_entries_a_space_rejects_are_skipped_with_the_reason():
    space = SearchSpace.from_dict({"layers": {"low": 64, "high": 256, "step": 32},
                                   "learning_rate": {"low": 0.01, "high": 0.1}})
    entries, skipped = portfolio.portfolio_values(space, base("bpr-max"))
    reasons = dict(skipped)
    assert "layers=512 is outside the searched range 64-256" in reasons["diginetica_bprmax_shared_best"]
    assert "learning_rate=0.2 is outside" in reasons["rsc15_bprmax_shared_100"]
    assert [name for name, _ in entries] == ["retailrocket_bprmax_shared_best", "rsc15_bprmax_elu05_100"]
    assert entries[0][1] == {"layers": 224, "learning_rate": 0.05}
    lacking = SearchSpace.from_dict({"hidden_act": {"values": ["tanh", "relu"]}, "layers": {"low": 64, "high": 512}})
    entries, skipped = portfolio.portfolio_values(lacking, base("bpr-max"))
    assert entries == [] and all("no value for the searched hidden_act" in r for _, r in skipped)


def test_empty_portfolio_and_unparsable_initial_params_are_one_clear_error():
    with pytest.raises(ValueError, match="no configuration for loss=top1.*--initial_params none"):
        portfolio.resolve_initial("portfolio", SearchSpace.default("top1"), base("top1"))
    for text in ("portfolo", "layers", "best"):
        with pytest.raises(ValueError, match="expected portfolio, none, best_known or k=v"):
            portfolio.resolve_initial(text, SearchSpace.default("bpr-max"), base("bpr-max"))
    with pytest.raises(ValueError, match="layerz"):
        portfolio.resolve_initial("layerz=3", SearchSpace.default("bpr-max"), base("bpr-max"))
    assert portfolio.resolve_initial("none", SearchSpace.default("top1"), base("top1")) == ([], [])
    assert portfolio.resolve_initial("", SearchSpace.default("top1"), base("top1")) == ([], [])


def test_fidelities_and_the_halving_schedule():
    from gru4rec_tf.tune import tuner  # pylint: disable=import-outside-toplevel
    levels = tuner.fidelities(3, mode="epochs")
    assert [(round(f.fraction, 4), f.epochs) for f in levels] == [(0.3333, 1), (1.0, 1), (1.0, 3)]
    costs = [f.cost(3) for f in levels]
    assert costs == pytest.approx([1 / 9, 1 / 3, 1])
    assert tuner.rung_costs(levels, 3) == pytest.approx([1 / 9, 1 / 3, 2 / 3])  # the top rung continues rung 1
    default = tuner.fidelities(3)  # every epoch, on the newest 1/9, 1/3, all of the sessions: the same costs
    assert [(round(f.fraction, 4), f.epochs) for f in default] == [(0.1111, 3), (0.3333, 3), (1.0, 3)]
    assert tuner.rung_costs(default, 3) == pytest.approx(costs) and tuner.continues(default) == [False] * 3
    assert [(round(f.fraction, 4), f.epochs) for f in tuner.fidelities(5, rungs=2, eta=4)] == [(0.25, 5), (1.0, 5)]
    with pytest.raises(ValueError, match="sessions, epochs"):
        tuner.fidelities(3, mode="steps")
    assert tuner.halving_schedule(12, costs) == [36, 12, 4]  # 36 configurations for the price of 12 full trials
    assert tuner.halving_schedule(30, costs) == [90, 30, 10]
    assert tuner.halving_schedule(2, costs) == [5, 1, 1]
    for budget in (1.5, 2, 7, 12, 30):
        schedule = tuner.halving_schedule(budget, costs)
        assert sum(c * n for c, n in zip(costs, schedule, strict=True)) <= budget + 1e-9
    # the extension rung (the best full trial continuing up to 2 x the epochs: at most 1 more full trial) is
    # reserved in the budget: one finalist fewer, else a smaller bracket; none when even that leaves no room
    assert tuner.halving_schedule(12, costs, extension=1.0) == [36, 12, 3, 1]
    assert tuner.halving_schedule(30, costs, extension=1.0) == [90, 30, 9, 1]
    assert tuner.halving_schedule(4, costs, extension=1.0) == [9, 3, 1, 1]
    assert tuner.halving_schedule(2, costs, extension=1.0) == [5, 1, 1]
    for budget in (2.5, 4, 7, 12, 30):
        for extension in (1 / 3, 1.0):
            schedule = tuner.halving_schedule(budget, costs, extension=extension)
            assert len(schedule) == 4 and schedule[-1] == 1
            assert sum(c * n for c, n in zip(costs + [extension], schedule, strict=True)) <= budget + 1e-9
    for mode in tuner.FIDELITY_MODES:
        assert [(round(f.fraction, 4), f.epochs) for f in tuner.fidelities(1, mode=mode)] == \
            [(0.1111, 1), (0.3333, 1), (1.0, 1)]
    assert tuner.fidelities(4, rungs=1) == [tuner.Fidelity(1.0, 4)]
    with pytest.raises(ValueError, match="eta >= 2"):
        tuner.fidelities(3, eta=1)


def test_a_halving_study_stored_before_the_fidelity_mode_resumes_in_the_epochs_mode():
    from gru4rec_tf.commands import tune as tune_command  # pylint: disable=import-outside-toplevel
    stored = {"rungs": 3, "eta": 3}  # study.json of a study from before --fidelity
    assert tune_command._comparable(stored) == tune_command._comparable({"rungs": 3, "eta": 3, "fidelity": "epochs"})
    assert tune_command._comparable(stored) != tune_command._comparable({"rungs": 3, "eta": 3,
                                                                         "fidelity": "sessions"})
    assert tune_command._comparable({"path": "/a/b", "events": 3}) == {"events": 3}


def test_a_halving_study_stored_before_the_extension_rung_resumes_without_it(tmp_path, monkeypatch):
    from gru4rec_tf.commands import tune as tune_command  # pylint: disable=import-outside-toplevel

    class Flags:  # the flags resolve_max_epochs and check_or_write_identity read
        epochs, max_epochs, output = 3, None, str(tmp_path)

    monkeypatch.setattr(tune_command, "FLAGS", Flags)
    assert tune_command.resolve_max_epochs(None) == 6  # a new study: up to 2 x --epochs
    old = {"epochs": 3, "halving": {"rungs": 3, "eta": 3, "fidelity": "sessions"}}  # study.json before it
    assert tune_command.resolve_max_epochs(old) == 3  # resumed as it was planned: no extension
    assert tune_command.resolve_max_epochs(dict(old, halving=dict(old["halving"], max_epochs=5))) == 5
    (tmp_path / tune_command.STUDY_FILE).write_text(json.dumps(old))
    assert tune_command.check_or_write_identity(dict(old, halving=dict(old["halving"], max_epochs=3)))
    with pytest.raises(ValueError, match="other settings"):
        tune_command.check_or_write_identity(dict(old, halving=dict(old["halving"], max_epochs=6)))
    Flags.max_epochs = 4  # given explicitly, it is what the identity check compares
    assert tune_command.resolve_max_epochs(old) == 4
