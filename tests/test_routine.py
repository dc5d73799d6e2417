"""The training routine: validation and early stopping, resumable runs, warm start, TensorBoard."""
import os

import numpy as np
import pytest
import tensorflow as tf

from gru4rec_tf.model import model_dir
from gru4rec_tf.data import synthetic
from gru4rec_tf.train import routine
from gru4rec_tf.train import warm_start
from gru4rec_tf.train.options import TrainOptions
from gru4rec_tf.data.session_data import SessionData
from gru4rec_tf.data.vocabulary import ItemVocabulary
from param_variants import BPR_MAX, PARAM_VARIANTS

PARAMS = BPR_MAX


@pytest.fixture(scope="module")
def split():
    events = synthetic.generate_sessions(n_items=80, n_sessions=300, seed=4, span_days=4.0)
    train_events, valid_events = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train_events)
    return vocab, SessionData.from_events(train_events, vocab), SessionData.from_events(valid_events, vocab)


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


def _assert_same_weights(a, b, atol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


class _Interrupt(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("params,device_sampling", [(p, False) for p in PARAM_VARIANTS] + [
    (PARAM_VARIANTS[0], True), (PARAM_VARIANTS[1], True)], ids=[
    "bpr-max-momentum-dropout", "xe-separate", "top1-none", "bpr-max-momentum-dropout-device-sampling",
    "xe-separate-device-sampling"])
def test_interrupted_and_resumed_run_ends_with_the_uninterrupted_weights(split, tmp_path, params, device_sampling):
    vocab, train_data, _ = split
    kwargs = dict(seed=5, steps_per_call=4, log_every_s=1e9, device_sampling=device_sampling)
    reference = routine.train(train_data, vocab, params, TrainOptions(**kwargs))
    ckpt = str(tmp_path / "ckpt")
    chunks_seen = []

    def interrupt_at(points):
        def hook(epoch, metrics):  # an epoch boundary interruption
            del metrics
            if ("epoch", epoch) in points:
                points.discard(("epoch", epoch))
                raise _Interrupt()
        return hook

    # interruptions: two mid-epoch (after the checkpoint of a chunk) and one at an epoch boundary
    original = routine._EpochLoop._after_chunk  # pylint: disable=protected-access
    chunks_per_epoch = routine.build_trainer(vocab.support, params, steps_per_call=4).make_schedule(
        train_data).n_chunks(4)
    assert chunks_per_epoch > 4
    stops = {2, chunks_per_epoch + 3}  # mid-epoch in epochs 1 and 2

    def after_chunk(self, progress):
        original(self, progress)
        chunks_seen.append(progress.next_chunk)
        if len(chunks_seen) in stops:
            stops.discard(len(chunks_seen))
            raise _Interrupt()

    points = {("epoch", 0)}
    attempts = 0
    try:
        routine._EpochLoop._after_chunk = after_chunk  # pylint: disable=protected-access
        while True:
            attempts += 1
            try:
                resumed = routine.train(train_data, vocab, params,
                                        TrainOptions(checkpoint_dir=ckpt, checkpoint_every_s=0.0, **kwargs),
                                        on_epoch_end=interrupt_at(points))
                break
            except _Interrupt:
                assert attempts < 10
    finally:
        routine._EpochLoop._after_chunk = original  # pylint: disable=protected-access
    assert attempts == 4  # two mid-epoch kills, one at an epoch boundary, then the finishing run
    assert resumed.resumed_from_epoch is not None and resumed.resumed_from_epoch >= 1
    _assert_same_weights(_weights(reference.model), _weights(resumed.model))
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in reference.history], rel=1e-5)
    assert resumed.identity.get("device_sampling", False) == device_sampling


@pytest.mark.slow
def test_a_finished_run_resumed_again_trains_nothing(split, tmp_path):
    vocab, train_data, _ = split
    ckpt = str(tmp_path / "ckpt")
    options = TrainOptions(seed=1, epochs=1, checkpoint_dir=ckpt, log_every_s=1e9)
    first = routine.train(train_data, vocab, PARAMS, options)
    again = routine.train(train_data, vocab, PARAMS, options)
    _assert_same_weights(_weights(first.model), _weights(again.model), atol=0)
    assert again.resumed_from_epoch == 1.0 and len(again.history) == 1


@pytest.mark.slow
def test_checkpoint_of_another_run_is_refused_naming_the_differences(split, tmp_path):
    vocab, train_data, _ = split
    ckpt = str(tmp_path / "ckpt")
    routine.train(train_data, vocab, PARAMS, TrainOptions(seed=1, epochs=1, checkpoint_dir=ckpt, log_every_s=1e9))
    before = os.path.getmtime(os.path.join(ckpt, "checkpoint.npz"))
    other = PARAMS.with_overrides({"learning_rate": 0.2, "n_sample": 8})
    with pytest.raises(ValueError, match=r"another run.*learning_rate: 0\.1 in the checkpoint, 0\.2 now.*n_sample"):
        routine.train(train_data, vocab, other, TrainOptions(seed=1, epochs=1, checkpoint_dir=ckpt))
    with pytest.raises(ValueError, match=r"seed: 1 in the checkpoint, 2 now"):
        routine.train(train_data, vocab, PARAMS, TrainOptions(seed=2, epochs=1, checkpoint_dir=ckpt))
    with pytest.raises(ValueError, match=r"train_data: "):
        routine.train(train_data.first_sessions(100), vocab, PARAMS,
                      TrainOptions(seed=1, epochs=1, checkpoint_dir=ckpt))
    assert os.path.getmtime(os.path.join(ckpt, "checkpoint.npz")) == before
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        routine.train(train_data, vocab, PARAMS, TrainOptions(seed=1, epochs=1, checkpoint_dir=str(a_file)))


def test_validation_keeps_the_best_epoch_and_stops_early(split):
    vocab, train_data, valid_data = split
    params = PARAMS.with_overrides({"learning_rate": 0.4})
    result = routine.train(train_data, vocab, params, TrainOptions(seed=3, epochs=6, log_every_s=1e9),
                           validation=routine.Validation(valid_data, metric="recall@5", patience=1))
    history = [m["recall@5"] for m in result.valid_history]
    assert len(history) == len(result.history) <= 6
    best = int(np.argmax(history))
    assert result.best_epoch == best + 1
    if result.stopped_early:
        assert len(history) == best + 2  # one epoch without improvement, then stop
    from gru4rec_tf.evaluation import full_catalogue  # pylint: disable=g-import-not-at-top
    again = full_catalogue.Evaluator(result.model).evaluate(valid_data, (5,), "standard")
    assert again["recall@5"] == pytest.approx(history[best])  # the kept weights are the best epoch's
    summary = result.summary()
    assert summary["best_epoch"] == result.best_epoch and summary["epochs_run"] == len(history)
    assert summary["valid_history"] == result.valid_history


def test_validation_rejects_bad_settings(split):
    vocab, _, valid_data = split
    with pytest.raises(ValueError, match="recall@K or mrr@K"):
        routine.Validation(valid_data, metric="ndcg@10")
    with pytest.raises(ValueError, match="patience must be >= 1"):
        routine.Validation(valid_data, patience=0)
    unknown = SessionData.from_events(synthetic.generate_sessions(n_items=20, n_sessions=10, seed=1,
                                                                  item_id_offset=900_000), vocab)
    with pytest.raises(ValueError, match="no event to predict"):
        routine.Validation(unknown)


def test_warm_start_carries_rows_and_adds_new_items(split, tmp_path):
    vocab, train_data, _ = split
    first = routine.train(train_data, vocab, PARAMS, TrainOptions(seed=1, epochs=1, log_every_s=1e9))
    model_dir.save_model(str(tmp_path / "m"), first.model, vocab, seed=1, optimizer_state=first.optimizer_state)
    saved = model_dir.load_model(str(tmp_path / "m"))
    assert saved.optimizer_state is not None

    day2 = synthetic.generate_sessions(n_items=100, n_sessions=200, seed=9, item_id_offset=100_030)
    day2_vocab = ItemVocabulary.from_events(day2)
    merged = warm_start.warm_vocabulary(saved.vocab, day2_vocab)
    shared = np.intersect1d(vocab.item_ids, day2_vocab.item_ids)
    assert len(merged) == len(np.union1d(vocab.item_ids, day2_vocab.item_ids))
    trainer = routine.build_trainer(merged.support, PARAMS, seed=2)
    report = warm_start.carry_over(saved, trainer, merged, source="m")
    assert (report.carried_items, report.new_items, report.dropped_items) == (
        len(vocab), len(merged) - len(vocab), 0)
    new_rows, old_rows = merged.lookup(shared), vocab.lookup(shared)
    np.testing.assert_array_equal(trainer.model.item_vectors.numpy()[new_rows],
                                  first.model.item_vectors.numpy()[old_rows])
    np.testing.assert_array_equal(trainer.model.gru_layers[0].wh.numpy(), first.model.gru_layers[0].wh.numpy())
    acc, _ = trainer.optimizer.slots(trainer.model.item_vectors)
    fresh = merged.lookup(np.setdiff1d(day2_vocab.item_ids, vocab.item_ids))
    assert (acc.numpy()[fresh] == 0).all() and (acc.numpy()[new_rows] > 0).any()

    dropped = warm_start.warm_vocabulary(saved.vocab, day2_vocab, drop_unseen=True)
    report = warm_start.carry_over(saved, routine.build_trainer(dropped.support, PARAMS, seed=2), dropped)
    assert report.dropped_items == len(vocab) - len(shared) and report.carried_items == len(shared)


@pytest.mark.slow
def test_warm_start_refuses_other_architectures(split, tmp_path):
    vocab, train_data, _ = split
    first = routine.train(train_data, vocab, PARAMS, TrainOptions(seed=1, epochs=1, log_every_s=1e9))
    model_dir.save_model(str(tmp_path / "m"), first.model, vocab)
    saved = model_dir.load_model(str(tmp_path / "m"))
    assert saved.optimizer_state is None
    other = PARAMS.with_overrides({"layers": (8,), "constrained_embedding": False, "embedding": 4})
    with pytest.raises(ValueError, match=r"layers=\[8\] \(the saved model has \[16\]\).*constrained_embedding"):
        routine.train(train_data, vocab, other, warm_start=saved)
    compatible = PARAMS.with_overrides({"learning_rate": 0.01, "n_sample": 4, "dropout_p_hidden": 0.0})
    result = routine.train(train_data, vocab, compatible, TrainOptions(epochs=1, log_every_s=1e9), warm_start=saved)
    assert result.summary()["warm_start"]["carried_items"] == len(vocab)


@pytest.mark.slow
def test_tensorboard_scalars(split, tmp_path):
    vocab, train_data, valid_data = split
    options = TrainOptions(seed=1, epochs=2, steps_per_call=8, log_every_s=1e9, tensorboard_dir=str(tmp_path / "tb"))
    routine.train(train_data, vocab, PARAMS, options, validation=routine.Validation(valid_data))
    tags = {}
    for path in tf.io.gfile.glob(str(tmp_path / "tb" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert {"train/loss", "train/events_per_second", "train/epoch_loss", "valid/mrr@20", "valid/recall@20"} <= set(tags)
    assert len(tags["valid/mrr@20"]) == 2 and len(tags["train/loss"]) > 2


def test_unreadable_checkpoint_is_refused_and_left_as_it_is(split, tmp_path):
    vocab, train_data, _ = split
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"checkpoint.npz: not a readable gru4rec_tf checkpoint"):
        routine.train(train_data, vocab, PARAMS, TrainOptions(seed=1, epochs=1, checkpoint_dir=str(ckpt)))
    assert (ckpt / "checkpoint.npz").read_bytes() == b"not a checkpoint"


@pytest.mark.parametrize("gpus,requested,expected", [
    ([], None, False), (["/physical_device:GPU:0"], None, True),  # default: inside the loop only with a GPU
    ([], True, True), (["/physical_device:GPU:0"], False, False),  # an explicit choice wins
])
def test_device_sampling_defaults_to_the_loop_only_where_a_gpu_is_visible(monkeypatch, gpus, requested, expected):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    assert routine.use_device_sampling(requested) is expected


def test_default_training_on_this_machine_samples_where_use_device_sampling_says(split):
    vocab, train, _ = split
    result = routine.train(train, vocab, PARAMS, TrainOptions(epochs=1, log_every_s=1e9))
    assert result.identity.get("device_sampling", False) is routine.use_device_sampling(None)
