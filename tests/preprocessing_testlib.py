"""Shared helpers of the preprocessing tests: tiny click logs and comparisons of pipeline output with pandas."""
import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_tf.data.synthetic import generate_sessions

# The FnApiRunner is what DirectRunner uses for batch; naming it skips DirectRunner's attempt to download Prism.
IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
MULTI_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]

# malformed lines of the synthetic user log (header: UserId,ItemId,EventType,Timestamp) and why they are rejected
MALFORMED = [
    ("column_count", "u1,100001,view"),
    ("column_count", "u1,100001,view,2020-09-14T00:00:00Z,extra"),
    ("empty_id", "u2,,view,2020-09-14T00:00:00Z"),
    ("empty_id", " ,100002,view,2020-09-14T00:00:00Z"),
    ("bad_time", "u3,100003,view,yesterday"),
    ("bad_time", "u3,100003,view,"),
]


def _iso(us: int, style: int) -> str:
    stamp = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(microseconds=int(us))
    if style == 0:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if style == 1:
        return stamp.replace(tzinfo=None).isoformat(sep=" ")  # naive: UTC
    return stamp.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()


def write_user_log(path: Path, n_sessions: int = 500, seed: int = 3) -> pd.DataFrame:
    """A click log with users (no session column), event types, ISO times in three styles, repeats, ties and
    the MALFORMED lines; returns the well-formed rows as written."""
    ev = generate_sessions(n_items=120, n_sessions=n_sessions, mean_length=5.0, seed=seed, span_days=6.0)
    rng = np.random.default_rng(seed)
    us = np.round(ev["Time"].to_numpy() * 1e6).astype(np.int64)
    tie = rng.random(len(us)) < 0.05  # some events at the same time as the previous one
    us[1:][tie[1:]] = us[:-1][tie[1:]]
    users = "u" + (ev["SessionId"] % (n_sessions // 3)).astype(str)
    users[users == "u7"] = '"u,7"'  # a quoted ID containing the delimiter
    df = pd.DataFrame({
        "UserId": users,
        "ItemId": ev["ItemId"].astype(str),
        "EventType": np.where(rng.random(len(us)) < 0.1, "cart", "view"),
        "Timestamp": [_iso(t, i % 3) for i, t in enumerate(us)],
    })
    repeat = df.sample(frac=0.05, random_state=seed)  # consecutive repeats (same user, item and time)
    df = pd.concat([df, repeat]).sort_index(kind="stable").reset_index(drop=True)
    lines = ["UserId,ItemId,EventType,Timestamp"] + [",".join(row) for row in df.itertuples(index=False)]
    for k, (_, bad) in enumerate(MALFORMED):
        lines.insert(10 + 37 * k, bad)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return df


def write_diginetica_with_time(src: Path, dst: Path) -> None:
    """Diginetica's item views with a ``Time`` column: the day (eventdate) in unix seconds + timeframe / 1000."""
    df = pd.read_csv(src, sep=";", dtype=str, keep_default_na=False)
    day = pd.to_datetime(df["eventdate"], utc=True).astype("int64") // 10**9
    time = day + df["timeframe"].astype(np.int64) / 1000
    out = pd.DataFrame({"session_id": df["session_id"], "item_id": df["item_id"], "Time": time.map(repr)})
    out.to_csv(dst, sep=";", index=False)


def read_rejected(output: Path) -> list:
    rows = []
    for path in sorted((Path(output) / "rejected").glob("rejected-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows


def assert_same_events(got: pd.DataFrame, want: pd.DataFrame, label: str) -> None:
    """Same events in the same order: IDs compared as text, times exactly."""
    assert len(got) == len(want), f"{label}: {len(got)} events, expected {len(want)}"
    for col in ("SessionId", "ItemId"):
        same = got[col].astype(str).to_numpy() == want[col].astype(str).to_numpy()
        assert same.all(), f"{label}: {col} differs first at row {int(np.flatnonzero(~same)[0])}"
    np.testing.assert_array_equal(got["Time"].to_numpy(), want["Time"].to_numpy(), err_msg=label)


def split_counts(frame: pd.DataFrame) -> dict:
    return {"events": len(frame), "sessions": frame["SessionId"].nunique(), "items": frame["ItemId"].nunique()}


def directory_contents(root: Path) -> dict:
    """relative path -> bytes of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
