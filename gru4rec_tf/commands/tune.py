"""``gru4rec tune``: hyperparameter search (KerasTuner), writing the best parameters for ``gru4rec train``.

::

    gru4rec tune --train train_tr.tsv --valid train_valid.tsv --trials 50 --epochs 3 --objective mrr@20 \\
        --fixed_params "loss=bpr-max,n_sample=2048" --output tune_out/
    gru4rec train --train train_full.tsv --test test.tsv --params "$(jq -r .params tune_out/best_params.json)"

Writes into ``--output``: ``best_params.json`` (``{"params": "k=v,...", "objective", "value", "trial", "epochs"}``),
``trials.csv`` (one row per trial: state, best value, seconds, parameters, the objective after every epoch),
``optimization_history.png``, ``study.json`` (the settings) and ``study/`` (KerasTuner's state). Running the same
command again continues the study (``--trials`` is the total). ``--workers N`` runs N worker processes on this
machine against one oracle (see :mod:`gru4rec_tf.tune.tuner` and the README for several machines).
"""
import json
import os
import socket
import subprocess
import sys

from absl import flags
from absl import logging

from gru4rec_tf.commands import common, option_flags
from gru4rec_tf.evaluation.options import EvalOptions
from gru4rec_tf.train.options import DEFAULT_EARLY_STOPPING_METRIC, DEFAULT_SEED, TrainOptions

FLAGS = flags.FLAGS
STUDY_FILE = "study.json"
STUDY_DIR = "study"
# The fields of TrainOptions and EvalOptions that are flags of this command (--epochs is per trial, its own flag).
TRAIN_OPTION_FLAGS = ("seed", "steps_per_call")
EVAL_OPTION_FLAGS = ("eval_mode",)
_IDENTITY_KEYS = ("objective", "epochs", "fixed", "space", "algorithm", "seed", "eval_mode", "train", "valid",
                  "initial", "halving")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines this command's flags (in ``flag_values``; the options' flags derived from their classes)."""
    fv = flag_values
    flags.DEFINE_string("train", None, "Training event log (TSV/CSV with header, or Parquet).", required=True,
                        flag_values=fv)
    flags.DEFINE_string("valid", None, "Validation event log scored after every epoch of every trial.",
                        required=True, flag_values=fv)
    flags.DEFINE_string("output", None, "Output directory (the study is stored there and resumed from it).",
                        required=True, flag_values=fv)
    flags.DEFINE_integer("trials", 20, "The study's budget: full trials (--epochs epochs on the whole --train); "
                         "with --algorithm halving, spent on many cheaper evaluations (README). Resumed trials "
                         "count.", flag_values=fv)
    flags.DEFINE_integer("epochs", 3, "Epochs of a full trial (the objective is reported after each).",
                         flag_values=fv)
    flags.DEFINE_string("objective", DEFAULT_EARLY_STOPPING_METRIC, "Validation metric to maximise: recall@K or "
                        "mrr@K.", flag_values=fv)
    flags.DEFINE_string("fixed_params", "", "Fixed hyperparameters 'k=v,k=v' (official names); loss=... picks "
                        "the default space (default loss: cross-entropy, with logq=1).", flag_values=fv)
    flags.DEFINE_string("space", None, "Search space JSON file replacing the default space (format: README, "
                        "gru4rec_tf/search_space.py).", flag_values=fv)
    flags.DEFINE_float("timeout_s", None, "Start no new trial after this many seconds (the running ones finish).",
                       flag_values=fv)
    flags.DEFINE_enum("algorithm", "halving", ["halving", "bayesian", "random"], "Search: successive halving over "
                      "fidelities (cheap evaluations on part of the sessions, see --fidelity; the best promoted), "
                      "or KerasTuner's Bayesian optimisation (Gaussian process) or random search of full trials.",
                      flag_values=fv)
    flags.DEFINE_integer("rungs", 3, "halving: fidelity levels (the top one a full trial; each lower one 1/--eta "
                         "of the data passes of the next).", flag_values=fv)
    flags.DEFINE_integer("eta", 3, "halving: 1 of every --eta configurations goes up a rung.", flag_values=fv)
    flags.DEFINE_enum("fidelity", "sessions", ["sessions", "epochs"], "halving: how a lower rung is cheaper: "
                      "'sessions' (every epoch, on the most recent 1/eta, 1/eta^2, ... of the sessions) or 'epochs' "
                      "(fewer epochs first, then fewer sessions; a promotion continues the run below).",
                      flag_values=fv)
    flags.DEFINE_integer("max_epochs", None, "halving: the best full trial continues from its checkpoint up to this "
                         "many epochs in all while the objective improves (one epoch of patience); its best epoch is "
                         "the chosen n_epochs. Default: 2 x --epochs for a new study (the stored plan when resuming "
                         "one); --epochs turns it off. Its worst case is reserved in the --trials budget.",
                         flag_values=fv)
    flags.DEFINE_integer("prune_after", 4, "Median pruning starts once this many trials reached an epoch "
                         "(0: no pruning).", flag_values=fv)
    flags.DEFINE_string("initial_params", "portfolio", "The study's first configurations: 'portfolio' (the "
                        "authors' published settings for the loss, gru4rec_tf/tune/portfolio.py; an entry the "
                        "space rejects is skipped), 'none', 'best_known' (one: README), or 'k=v,...' giving every "
                        "searched parameter (within the space). A resumed study does not rerun them.",
                        flag_values=fv)
    flags.DEFINE_float("divergence_factor", 10.0, "Stop a trial as DIVERGED once a chunk's mean training loss "
                       "exceeds this many times its first step's loss (0: never).", flag_values=fv)
    flags.DEFINE_integer("workers", 1, "Worker processes on this machine (one oracle, trials in parallel).",
                         flag_values=fv)
    # --seed is TrainOptions.seed, and also seeds the oracle: defined here first, with its own help text
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Seed of the oracle and of every trial's training.", flag_values=fv)
    option_flags.define_option_flags(TrainOptions, fv, fields=TRAIN_OPTION_FLAGS)
    option_flags.define_option_flags(EvalOptions, fv, fields=EVAL_OPTION_FLAGS)
    common.define_data_flags(fv)


def main(argv) -> None:
    del argv
    try:
        run()
    except (ValueError, OSError) as err:  # bad input, parameters or paths: one clear line
        common.fail(str(err))


# ------------------------------------------------------------------------------------------ checks (no TF)
def training_options() -> TrainOptions:
    """Every trial's :class:`TrainOptions` (seed, steps per call) of the flags; a ValueError names the flag."""
    with option_flags.flag_wording():
        return TrainOptions(**option_flags.option_values(TrainOptions, fields=TRAIN_OPTION_FLAGS))


def resolve_base(fixed_text: str):
    """``(base GRU4RecParams, names the user fixed)`` from ``--fixed_params``; loss-specific defaults added."""
    from gru4rec_tf.tune import search_space  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    try:
        base = GRU4RecParams.from_string(fixed_text)
    except ValueError as err:
        raise ValueError(f"--fixed_params: {err}") from None
    names = [item.split("=", 1)[0].strip() for item in fixed_text.split(",") if item.strip()]
    names = ["final_act" if n == "elu_param" else n for n in names]
    if "n_epochs" in names:
        raise ValueError("--fixed_params: give the epochs per trial with --epochs, not n_epochs")
    extra = {k: v for k, v in search_space.default_fixed(base.loss).items() if k not in names}
    return (base.with_overrides(extra) if extra else base), names


def resolve_space(base, fixed_names):
    from gru4rec_tf.tune.search_space import SearchSpace  # pylint: disable=g-import-not-at-top
    space = SearchSpace.from_file(FLAGS.space) if FLAGS.space else SearchSpace.default(base.loss)
    space.check(base, fixed_names)
    return space


def resolve_initial(space, base) -> list:
    """The first configurations' ``[(name, searched values)]`` (``--initial_params``); skipped portfolio entries
    are logged with their reason."""
    from gru4rec_tf.tune.portfolio import resolve_initial as resolve  # pylint: disable=g-import-not-at-top
    entries, skipped = resolve(FLAGS.initial_params, space, base)
    for name, reason in skipped:
        logging.warning("tune: portfolio entry %s skipped: %s", name, reason)
    if FLAGS.initial_params.strip() == "portfolio":
        logging.info("tune: the portfolio gives %d of its %d %s configuration(s)%s", len(entries),
                     len(entries) + len(skipped), base.loss, f": {', '.join(n for n, _ in entries)}" if entries
                     else "")
    return entries


def check_settings() -> None:
    from gru4rec_tf.tune.search_space import check_objective  # pylint: disable=g-import-not-at-top
    check_objective(FLAGS.objective)
    for name, low in (("trials", 1), ("epochs", 1), ("workers", 1), ("rungs", 1), ("eta", 2)):
        if getattr(FLAGS, name) < low:
            raise ValueError(f"--{name} must be >= {low}, got {getattr(FLAGS, name)}")
    if FLAGS.max_epochs is not None and FLAGS.max_epochs < FLAGS.epochs:
        raise ValueError(f"--max_epochs must be >= --epochs ({FLAGS.epochs}), got {FLAGS.max_epochs}")
    if FLAGS.prune_after < 0:
        raise ValueError(f"--prune_after must be >= 0, got {FLAGS.prune_after}")
    if FLAGS.divergence_factor < 0:
        raise ValueError(f"--divergence_factor must be >= 0, got {FLAGS.divergence_factor}")
    if FLAGS.timeout_s is not None and FLAGS.timeout_s <= 0:
        raise ValueError(f"--timeout_s must be > 0, got {FLAGS.timeout_s}")
    training_options()
    import importlib.util  # pylint: disable=g-import-not-at-top
    missing = [m for m in ("keras_tuner", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"gru4rec tune needs KerasTuner and scikit-learn (missing: {', '.join(missing)}); "
                         "install them with scripts/install.sh or pip install keras-tuner==1.4.8 scikit-learn")
    if os.path.exists(FLAGS.output) and not os.path.isdir(FLAGS.output):
        raise ValueError(f"--output {FLAGS.output} exists and is not a directory")


def load_data():
    """``(vocab, train SessionData, valid SessionData)``; raises ValueError when VALID has nothing to score."""
    from gru4rec_tf.data.session_data import SessionData  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary  # pylint: disable=g-import-not-at-top
    train_events = common.load_events(FLAGS.train)
    valid_events = common.load_events(FLAGS.valid)
    vocab = ItemVocabulary.from_events(train_events)
    train = SessionData.from_events(train_events, vocab)
    valid = SessionData.from_events(valid_events, vocab)
    if valid.n_transitions == 0:
        raise ValueError(f"--valid {FLAGS.valid}: no session has 2 or more events of items of --train "
                         f"{FLAGS.train} (the files share {_shared_items(train_events, valid_events)} item(s)), "
                         "so there is nothing to score")
    if train.n_transitions == 0:
        raise ValueError(f"--train {FLAGS.train}: no session has 2 or more events")
    return vocab, train, valid


def _shared_items(train_events, valid_events) -> int:
    from gru4rec_tf.data.event_columns import DEFAULT_ITEM_KEY  # pylint: disable=g-import-not-at-top
    return int(len(set(valid_events[DEFAULT_ITEM_KEY].unique()) & set(train_events[DEFAULT_ITEM_KEY].unique())))


def stored_identity() -> dict | None:
    """The settings of the study stored in ``--output`` (None when there is none or it cannot be read)."""
    try:
        with open(os.path.join(FLAGS.output, STUDY_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def resolve_max_epochs(stored: dict | None) -> int:
    """``--max_epochs``, or its default: the stored study's (a halving study stored before the extension rung
    existed has none: ``--epochs``), else ``2 x --epochs``."""
    if FLAGS.max_epochs is not None:
        return FLAGS.max_epochs
    if stored is not None and isinstance(stored.get("halving"), dict):
        return int(stored["halving"].get("max_epochs", stored.get("epochs", FLAGS.epochs)))
    return 2 * FLAGS.epochs


def study_identity(base, space, train, valid, initial=None, max_epochs=None) -> dict:
    identity = {
        "objective": FLAGS.objective.strip(), "epochs": FLAGS.epochs, "fixed": base.to_string(),
        "space": space.to_dict(), "algorithm": FLAGS.algorithm, "seed": FLAGS.seed, "eval_mode": FLAGS.eval_mode,
        "train": {"path": os.path.abspath(FLAGS.train), "events": int(train.n_events),
                  "sessions": int(train.n_sessions)},
        "valid": {"path": os.path.abspath(FLAGS.valid), "events": int(valid.n_events),
                  "sessions": int(valid.n_sessions)},
    }
    if initial:  # only when given: studies stored before --initial_params existed still resume
        identity["initial"] = [values for _, values in initial] if len(initial) > 1 else initial[0][1]
    if FLAGS.algorithm == "halving":
        identity["halving"] = {"rungs": FLAGS.rungs, "eta": FLAGS.eta, "fidelity": FLAGS.fidelity,
                               "max_epochs": 2 * FLAGS.epochs if max_epochs is None else int(max_epochs)}
    return identity


def _comparable(value):
    """A data file is the same by its sizes, not its path (workers on other machines, moved files); a halving study
    stored without its fidelity mode used the ``epochs`` one."""
    if isinstance(value, dict) and "rungs" in value and "fidelity" not in value:
        return dict(value, fidelity="epochs")  # a halving study stored before --fidelity: the epochs mode
    return {k: v for k, v in value.items() if k != "path"} if isinstance(value, dict) and "path" in value else value


def check_or_write_identity(identity: dict) -> bool:
    """True when ``--output`` holds this study (to resume); ValueError when it holds another one."""
    path = os.path.join(FLAGS.output, STUDY_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                stored = json.load(handle)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read the stored study settings: {err}") from None
        if isinstance(stored.get("halving"), dict) and "max_epochs" not in stored["halving"]:
            # stored before the extension rung existed: its epochs were --epochs (no extension)
            stored = dict(stored, halving=dict(stored["halving"], max_epochs=stored.get("epochs")))
        differ = [k for k in _IDENTITY_KEYS if _comparable(stored.get(k)) != _comparable(identity.get(k))]
        if differ:
            raise ValueError(f"--output {FLAGS.output} holds a study with other settings ({', '.join(differ)}); "
                             "rerun with the same settings to continue it, or choose another --output")
        return True
    if os.path.isdir(os.path.join(FLAGS.output, STUDY_DIR)):
        raise ValueError(f"--output {FLAGS.output} has a {STUDY_DIR}/ directory but no {STUDY_FILE}; "
                         "choose another --output")
    common.write_json(path, identity)
    return False


# ------------------------------------------------------------------------------------------------------- run
def run() -> dict:
    """Checks everything (no TensorFlow), then runs the study and writes the reports; returns best_params."""
    check_settings()
    base, fixed_names = resolve_base(FLAGS.fixed_params)
    space = resolve_space(base, fixed_names)
    initial = resolve_initial(space, base)
    vocab, train, valid = load_data()
    os.makedirs(FLAGS.output, exist_ok=True)
    max_epochs = resolve_max_epochs(stored_identity())
    resumed = check_or_write_identity(study_identity(base, space, train, valid, initial, max_epochs))
    logging.info("tune: %s study of %d trials x %d epochs, objective %s, %d searched parameters (%s); "
                 "train %d events, valid %d events", "resuming a" if resumed else "a new", FLAGS.trials,
                 FLAGS.epochs, FLAGS.objective, len(space.dimensions), space.source, train.n_events,
                 valid.n_events)
    if len(initial) == 1:
        logging.info("tune: the first trial runs %s", ",".join(f"{k}={v}" for k, v in initial[0][1].items()))
    if FLAGS.workers > 1 and "KERASTUNER_TUNER_ID" not in os.environ:
        return _run_with_workers(base, space, vocab, train, valid, initial, max_epochs)
    tuner = _make_tuner(base, space, initial, max_epochs)
    tuner.search(train_data=train, valid_data=valid, vocab=vocab)
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        return {}  # a worker process: the chief writes the reports
    return _report(tuner)


def _make_tuner(base, space, initial=None, max_epochs=None):
    from gru4rec_tf.tune import tuner as tuner_lib  # pylint: disable=g-import-not-at-top  (TensorFlow, KerasTuner)
    return tuner_lib.GRU4RecTuner(
        base, space, FLAGS.objective, FLAGS.epochs, max_trials=FLAGS.trials,
        directory=os.path.join(FLAGS.output, STUDY_DIR), algorithm=FLAGS.algorithm, seed=FLAGS.seed,
        prune_after=FLAGS.prune_after, timeout_s=FLAGS.timeout_s, training=training_options(),
        evaluation=common.eval_options(fields=EVAL_OPTION_FLAGS), divergence_factor=FLAGS.divergence_factor,
        initial=[values for _, values in initial or ()], rungs=FLAGS.rungs, eta=FLAGS.eta, fidelity=FLAGS.fidelity,
        max_epochs=max_epochs)


def _report(tuner) -> dict:
    from gru4rec_tf.tune import tuner as tuner_lib  # pylint: disable=g-import-not-at-top
    best = tuner_lib.write_reports(tuner, FLAGS.output)
    states = [tuner_lib.trial_state(t, tuner.project_dir) for t in tuner.oracle.trials.values()]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in tuner_lib.STATES if states.count(s))
    if best is None:
        raise ValueError(f"no trial finished ({counts}); see {os.path.join(FLAGS.output, 'trials.csv')}")
    result = best.to_dict(tuner.objective)
    if tuner.schedule:
        rungs = [int(t.hyperparameters.values.get(tuner_lib.RUNG_KEY, 0)) for t in tuner.oracle.trials.values()]
        levels = tuner.levels[:-1] if tuner.extension else tuner.levels
        plan = "; ".join(f"{f.fraction:.3g} of the sessions x {f.epochs} epoch(s)" for f in levels)
        if tuner.extension:
            plan += (f"; extension: the best full trial continued to at most {tuner.max_epochs} epochs while "
                     f"{tuner.objective} improved")
        planned = sum(c * n for c, n in zip(tuner.costs, tuner.schedule, strict=True))
        logging.info("tune: successive halving: %s evaluations per rung (%s), %.2f of %d full trials spent "
                     "(%.2f planned%s)", "/".join(str(rungs.count(r)) for r in range(len(tuner.levels))), plan,
                     tuner_lib.budget_spent(tuner), tuner.budget, planned,
                     ", the extension at its longest" if tuner.extension else "")
        for pair in tuner_lib.rung_agreement(tuner.oracle, tuner.project_dir):
            if pair["spearman"] is not None:
                logging.info("tune: rung %d -> %d: Spearman %.2f over %d configurations (how well the cheaper rung "
                             "ranked them)", *pair["rungs"], pair["spearman"], pair["configurations"])
    logging.info("tune: %d trials (%s); best %s %.4f (trial %s, %d epochs): %s; wrote %s", len(states), counts,
                 tuner.objective, best.value, int(best.trial_id) + 1, best.epochs, result["params"],
                 os.path.join(FLAGS.output, "best_params.json"))
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_argv() -> list:
    """This command's flags for a worker process (``--workers`` replaced by 1)."""
    args, skip = [], False
    for arg in sys.argv[2:]:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "-workers"):
            skip = True
            continue
        if arg.startswith(("--workers=", "-workers=")):
            continue
        args.append(arg)
    return [sys.executable, "-m", "gru4rec_tf", "tune"] + args + ["--workers=1"]


def _run_with_workers(base, space, vocab, train, valid, initial=None, max_epochs=None) -> dict:
    """Chief (the oracle, this process) + ``--workers`` worker processes running this same command.

    KerasTuner's distributed mode: the chief serves the oracle over gRPC on ``KERASTUNER_ORACLE_IP:PORT``; each
    worker (``KERASTUNER_TUNER_ID=tuner<i>``) asks it for trials and reports their epochs. On several machines, run
    the chief and the workers by hand with these variables and a shared ``--output`` (README).
    """
    import threading  # pylint: disable=g-import-not-at-top
    port = str(_free_port())
    env = dict(os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port)
    os.environ.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port, KERASTUNER_TUNER_ID="chief")
    tuner = _make_tuner(base, space, initial, max_epochs)
    chief = threading.Thread(target=tuner.search, kwargs=dict(train_data=train, valid_data=valid, vocab=vocab),
                             daemon=True, name="oracle")
    chief.start()  # serves the oracle until every trial has ended
    workers = [subprocess.Popen(_worker_argv(), env=dict(env, KERASTUNER_TUNER_ID=f"tuner{i}"))
               for i in range(FLAGS.workers)]
    logging.info("tune: oracle on 127.0.0.1:%s, %d worker processes", port, len(workers))
    try:
        codes = [worker.wait() for worker in workers]
    except KeyboardInterrupt:
        for worker in workers:
            worker.terminate()
        raise
    chief.join(timeout=60)
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        logging.warning("tune: worker(s) %s exited with an error; the study keeps what they reported", failed)
    return _report(tuner)
