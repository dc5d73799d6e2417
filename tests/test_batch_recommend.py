"""``gru4rec recommend`` (issue #25): every record equals the ``serving_default`` answer for the same session, in
every format, for an exported SavedModel and a model directory; the item-to-item table; bad input ends with one
clear error and writes nothing."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from absl import flags

import serving_testlib as st
import gru4rec_tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from gru4rec_tf.batch import pipeline
from gru4rec_tf.batch.model_handler import session_inputs
from gru4rec_tf.batch.options import RecommendOptions
from gru4rec_tf.commands import recommend as cli
from gru4rec_tf.data.event_columns import DataError
from gru4rec_tf.data.vocabulary import ItemVocabulary
from gru4rec_tf.model import model_dir
from gru4rec_tf.model import network as model_lib
from gru4rec_tf import params as params_lib

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
LONG = 70  # events of the longest session (longer than any other of the batch: padding must not matter)
UNKNOWN_IDS = ("7", "x9")  # not in the catalogue; "x9" is not even an integer


def _sessions(item_ids):
    """Session ID -> item IDs (text), oldest first: short, long, with unknown items and with only unknown items."""
    rng = np.random.RandomState(3)
    out = {}
    for s in range(40):
        length = LONG if s == 5 else 1 + s % 6
        items = [str(item_ids[i]) for i in rng.randint(0, len(item_ids), length)]
        if s % 4 == 1:
            items[rng.randint(length)] = UNKNOWN_IDS[s % 8 == 1]
        out[str(100 + s)] = items
    out["99"] = list(UNKNOWN_IDS)
    return out


def _write_log(path, sessions):
    lines = ["SessionId,ItemId,Time"]
    for s, (sid, items) in enumerate(sessions.items()):
        lines += [f"{sid},{item},{1_600_000_000 + 1000 * s + t}" for t, item in enumerate(items)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    export = st.export_model(root / "models", version=3)
    sessions = _sessions(st.ITEM_IDS)
    return {"root": root, "export": export, "sessions": sessions, "log": _write_log(root / "clicks.csv", sessions)}


def _direct(export, item_lists, id_dtype, k, exclude_seen):
    """serving_default's answer for each session, one request per session: (item_ids, scores, num_unknown)."""
    serve = tf.saved_model.load(export).signatures["serving_default"]
    answers = []
    for items in item_lists:
        out = serve(**{n: tf.constant(v) for n, v in session_inputs([items], id_dtype, k, exclude_seen).items()})
        n = int(out["num_results"][0])
        ids = out["item_ids"][0, :n].numpy().tolist()
        answers.append(([i.decode() for i in ids] if id_dtype == "string" else ids, out["scores"][0, :n].numpy(),
                        int(out["num_unknown"][0])))
    return answers


def _read(output, fmt):
    """The records of an output directory, by session ID."""
    files = sorted(p for p in Path(output).iterdir() if p.name.startswith("part-"))
    records = []
    for path in files:
        if fmt == "jsonl":
            records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        elif fmt == "parquet":
            records += pq.read_table(path).to_pylist()
        else:
            for raw in tf.data.TFRecordDataset(str(path)):
                feature = tf.train.Example.FromString(raw.numpy()).features.feature
                ids = feature["item_ids"]
                records.append({"session_id": feature["session_id"].bytes_list.value[0].decode(),
                                "item_ids": list(ids.int64_list.value) or [b.decode() for b in ids.bytes_list.value],
                                "scores": list(feature["scores"].float_list.value),
                                "model_version": feature["model_version"].bytes_list.value[0].decode()})
    assert all(set(r) == {"session_id", "item_ids", "scores", "model_version"} for r in records)
    by_id = {r["session_id"]: r for r in records}
    assert len(by_id) == len(records), "one record per session"
    return by_id


def _check_equal_to_serving(records, export, item_lists_by_id, id_dtype, k, exclude_seen):
    ids = sorted(item_lists_by_id)
    assert sorted(records) == ids
    answers = _direct(export, [item_lists_by_id[i] for i in ids], id_dtype, k, exclude_seen)
    for sid, (items, scores, _) in zip(ids, answers, strict=True):
        assert records[sid]["item_ids"] == items, sid
        # float32 rounding of the batched matrix products (a batch of 1 takes another kernel; TF Serving's request
        # batching shows the same): scores agree to a few ulp, the items and their order exactly
        np.testing.assert_allclose(np.float32(records[sid]["scores"]), scores, rtol=1e-6, atol=1e-7, err_msg=sid)
    return answers


# the fast tier runs jsonl here and Parquet in the model-directory test; both formats again, and TFRecord, in the slow
@pytest.mark.parametrize("fmt", ["jsonl", pytest.param("parquet", marks=pytest.mark.slow),
                                 pytest.param("tfrecord", marks=pytest.mark.slow)])
def test_every_record_is_the_serving_default_answer(data, tmp_path, fmt):
    output = tmp_path / "recs"
    summary = pipeline.build_and_run(RecommendOptions(
        model=data["export"], sessions=str(data["log"]), output=str(output), k=7, format=fmt, batch_size=16),
        IN_MEMORY)
    records = _read(output, fmt)
    answers = _check_equal_to_serving(records, data["export"], data["sessions"], "int64", 7, False)
    assert {r["model_version"] for r in records.values()} == {"3"}  # the version directory
    assert len(records["105"]["item_ids"]) == 7  # the long session
    assert records["99"]["item_ids"] == [] and records["99"]["scores"] == []  # nothing known: no recommendation
    assert summary["sessions"] == len(data["sessions"])
    assert summary["unknown_items"] == sum(a[2] for a in answers) == sum(
        i in UNKNOWN_IDS for items in data["sessions"].values() for i in items) > 2
    assert summary["sessions_without_results"] == 1
    assert summary["files"] == sorted(p.name for p in output.iterdir() if p.name != "stats.json")
    assert json.loads((output / "stats.json").read_text())["sessions"] == summary["sessions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs"]  # no staging directory left


def _string_model_dir(path):
    params = params_lib.GRU4RecParams.from_string("layers=10,n_sample=0")
    items = np.array([f"item-{i}" for i in range(30)], dtype=object)
    model = model_lib.GRU4Rec(len(items), params, seed=4)
    model.item_bias.assign(np.random.RandomState(4).normal(0, 0.1, len(items)).astype(np.float32))
    model_dir.save_model(str(path), model, ItemVocabulary(items))
    return path


def test_model_directory_string_ids_exclude_seen_and_overwrite(data, tmp_path):
    """A model directory is exported first; string IDs and exclude_seen give serving_default's answers too."""
    model = _string_model_dir(tmp_path / "model")
    rng = np.random.RandomState(5)
    sessions = {f"s{i}": [f"item-{j}" for j in rng.randint(0, 30, 1 + i % 9)] + (["nope"] if i == 3 else [])
                for i in range(25)}
    log = _write_log(tmp_path / "clicks.csv", sessions)
    output = tmp_path / "recs"
    output.mkdir()
    (output / "old.txt").write_text("previous output")
    options = RecommendOptions(model=str(model), sessions=str(log), output=str(output), k=5, exclude_seen=True,
                               overwrite=True, format="parquet")
    summary = pipeline.build_and_run(options, IN_MEMORY)
    records = _read(output, "parquet")
    assert not (output / "old.txt").exists()  # replaced
    export = tmp_path / "export"  # the answers of the same model's own export
    saved = model_dir.load_model(str(model))
    from gru4rec_tf.export.saved_model import export_saved_model  # pylint: disable=g-import-not-at-top
    export_saved_model(saved.model, saved.vocab, str(export), write_warmup=False)
    _check_equal_to_serving(records, str(export), sessions, "string", 5, True)
    for sid, items in sessions.items():
        assert not set(records[sid]["item_ids"]) & set(items)  # exclude_seen
    assert {r["model_version"] for r in records.values()} == {saved.weights_fingerprint}
    assert summary["unknown_items"] == 1


def test_item_to_item_table_covers_the_catalogue(data, tmp_path):
    output = tmp_path / "i2i"
    summary = pipeline.build_and_run(RecommendOptions(model=data["export"], output=str(output), item_to_item=True,
                                                      k=4, exclude_seen=True), IN_MEMORY)
    records = _read(output, "jsonl")
    catalogue = {str(i): [str(i)] for i in st.ITEM_IDS}
    _check_equal_to_serving(records, data["export"], catalogue, "int64", 4, True)
    assert summary["sessions"] == st.N_ITEMS and summary["unknown_items"] == 0
    assert all(int(sid) not in r["item_ids"] and len(r["item_ids"]) == 4 for sid, r in records.items())


# ---- bad input: one clear error, nothing written ------------------------------------------------------------


def _leftovers(directory, keep=("clicks.csv", "models", "bad.csv", "not_a_model")):
    return sorted(p.name for p in Path(directory).iterdir() if p.name not in keep)


def test_model_that_is_neither_a_saved_model_nor_a_model_directory(data, tmp_path):
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(ValueError, match=r"model .*not_a_model is neither an exported SavedModel \(no "
                                         r"saved_model.pb\) nor a gru4rec_tf model directory \(no config.json\)"):
        pipeline.build_and_run(RecommendOptions(model=str(tmp_path / "not_a_model"), sessions=str(data["log"]),
                                                output=str(tmp_path / "out")), IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_log_without_the_needed_columns(data, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("SessionId,Product,Time\n1,500,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) \['ItemId'\]"):
        pipeline.build_and_run(RecommendOptions(model=data["export"], sessions=str(bad), output=str(tmp_path / "o")),
                               IN_MEMORY)
    assert _leftovers(tmp_path) == []


def test_existing_output_without_overwrite_is_left_alone(data, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="output exists and is not an empty directory.*--overwrite"):
        pipeline.build_and_run(RecommendOptions(model=data["export"], sessions=str(data["log"]),
                                                output=str(output)), IN_MEMORY)
    assert sorted(p.name for p in output.iterdir()) == ["keep.txt"] and _leftovers(tmp_path) == ["out"]


@pytest.mark.parametrize("k", [0, -3])
def test_k_must_be_positive(k):
    with pytest.raises(ValueError, match=f"k must be an integer >= 1, got {k}"):
        RecommendOptions(model="m", sessions="x.csv", output="out", k=k)


def test_options_name_the_field():
    with pytest.raises(ValueError, match="format must be one of"):
        RecommendOptions(model="m", sessions="x.csv", output="out", format="csv")
    with pytest.raises(ValueError, match="sessions must name the click log"):
        RecommendOptions(model="m", output="out")
    with pytest.raises(ValueError, match="sessions must not be given with item_to_item"):
        RecommendOptions(model="m", sessions="x.csv", output="out", item_to_item=True)
    with pytest.raises(ValueError, match="time_format must be one of"):
        RecommendOptions(model="m", sessions="x.csv", output="out", time_format="days")


def test_flags_are_the_options_fields_and_unknown_flags_go_to_beam():
    values = flags.FlagValues()
    cli.define_flags(values)
    rest = cli.flags_parser(["gru4rec recommend", "--model", "m", "--sessions=x.csv", "--output=o", "--k=5",
                             "--exclude_seen", "--format=tfrecord", "--runner=DirectRunner",
                             "--direct_num_workers=2"], values)
    assert rest == ["gru4rec recommend", "--runner=DirectRunner", "--direct_num_workers=2"]
    assert (values.k, values.exclude_seen, values.format, values.item_to_item) == (5, True, "tfrecord", False)
    assert values["session_key"].default == "SessionId" and values["k"].default == 20
    assert values["k"].help == RecommendOptions.field_help("k")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "gru4rec_tf", "recommend", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_command_bad_inputs_end_with_one_error_line(data, tmp_path):
    (tmp_path / "not_a_model").mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text("SessionId,Product,Time\n1,500,0\n", encoding="utf-8")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = {
        "neither a SavedModel": (["--model", tmp_path / "not_a_model", "--sessions", data["log"]], "--model "),
        "log without columns": (["--model", data["export"], "--sessions", bad], "missing column(s) ['ItemId']"),
        "existing output": (["--model", data["export"], "--sessions", data["log"], "--output", tmp_path / "full"],
                            "pass --overwrite"),
        "k <= 0": (["--model", data["export"], "--sessions", data["log"], "--k", 0], "--k must be an integer >= 1"),
    }
    for name, (args, expected) in cases.items():
        if "--output" not in args:
            args = [*args, "--output", tmp_path / "out"]
        result = _cli(*args, *IN_MEMORY)
        assert result.returncode == 1, (name, result.stderr[-2000:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("gru4rec recommend: error: ") and expected in last, (name, last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "full", "not_a_model"]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["x"]


@pytest.mark.slow
def test_command_writes_records_and_prints_the_summary(data, tmp_path):
    result = _cli("--model", data["export"], "--sessions", data["log"], "--output", tmp_path / "recs", "--k", 3,
                  *IN_MEMORY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"sessions: {len(data['sessions'])} (1 without a known item)" in result.stdout
    assert "output files (1): part-00000-of-00001.jsonl" in result.stdout
    records = _read(tmp_path / "recs", "jsonl")
    _check_equal_to_serving(records, data["export"], data["sessions"], "int64", 3, False)
