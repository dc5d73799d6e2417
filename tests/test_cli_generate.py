"""``gru4rec generate`` with a changing catalogue (--days, --new_items_per_day, --popularity_drift): the files it
writes and its bad values (one error line, nothing written). Run as ``python -m gru4rec_tf`` subprocesses."""
import hashlib

import pandas as pd
import pytest

from gru4rec_tf.data.synthetic import DAY_SECONDS, write_dataset
from test_cli import assert_clean_failure, run_cli


def test_generate_changing_catalogue(tmp_path):
    out = tmp_path / "data"
    result = run_cli("generate", "--output", out, "--n_items", 150, "--n_sessions", 900, "--seed", 4, "--days", 4,
                     "--new_items_per_day", 10, "--popularity_drift", 0.4, module=True)
    assert result.returncode == 0, result.stderr
    train = pd.read_csv(out / "train.tsv", sep="\t")
    test = pd.read_csv(out / "test.tsv", sep="\t")
    events = pd.concat([train, test])
    day = ((events.groupby("SessionId")["Time"].transform("min") - 1_600_000_000.0) // DAY_SECONDS).astype(int)
    assert day.max() == 3
    first_day = day.groupby(events["ItemId"]).min()
    new_ids = range(100_150, 100_180)  # 10 items on each of days 1, 2, 3
    release = {item: 1 + (item - 100_150) // 10 for item in new_ids}
    assert all(first_day.get(item, 99) >= release[item] for item in new_ids)
    # days 1 and 2 are in train.tsv; test.tsv (the last day) keeps only items of train, so day 3's are absent
    assert sum(first_day.get(item, 99) == release[item] for item in new_ids if release[item] < 3) >= 18
    # the same files as the library function with the same options
    write_dataset(tmp_path / "lib", n_items=150, n_sessions=900, seed=4, span_days=4.0, new_items_per_day=10,
                  popularity_drift=0.4)
    for name in ("train.tsv", "test.tsv"):
        assert (tmp_path / "lib" / name).read_bytes() == (out / name).read_bytes()


def test_generate_default_days_unchanged(tmp_path):
    """--days 10 (the default) with no new items or drift writes the same files as before the options existed."""
    result = run_cli("generate", "--output", tmp_path / "a", "--n_items", 200, "--n_sessions", 600, "--seed", 1,
                     "--test_days", 2, "--days", 10, "--new_items_per_day", 0, "--popularity_drift", 0, module=True)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256((tmp_path / "a" / "train.tsv").read_bytes()).hexdigest()
    assert digest.startswith("3a1862896ccaef93")  # recorded before the options were added


@pytest.mark.parametrize("flag,value,message", [
    ("--days", 0, "--days must be >= 1, got 0"),
    ("--new_items_per_day", -2, "--new_items_per_day must be >= 0, got -2"),
    ("--popularity_drift", -0.5, "--popularity_drift must be a finite number >= 0, got -0.5"),
    ("--popularity_drift", "nan", "--popularity_drift must be a finite number >= 0, got nan"),
])
def test_generate_bad_values(tmp_path, flag, value, message):
    out = tmp_path / "data"
    result = run_cli("generate", "--output", out, flag, value, module=True)
    assert_clean_failure(result, message)
    assert not out.exists()
