"""A portfolio of published GRU4Rec settings per loss: the first configurations a study tries (``--initial_params
portfolio``, the default of ``gru4rec tune`` and of the pipeline's Tuner).

A new dataset rarely needs a configuration nobody has seen: the authors tuned GRU4Rec (Optuna, 200 trials per
dataset and loss) on six public datasets and published the winners. A small search budget goes further when it
starts from them and spends the rest on new configurations (:mod:`gru4rec_tf.tune.tuner`, successive halving).
These are facts (values) read from the authors' public parameter files and papers, no code; each entry names its
source. No TensorFlow import here.

Sources:

* ``paramfiles/*.py`` of ``hidasib/GRU4Rec_PyTorch_Official`` (the same values as the README table of the official
  GRU4Rec repositories; spec ``GRU4REC_SPEC.md`` section 9): RetailRocket, Coveo, Diginetica (BPR-max);
  Yoochoose, Rees46 and RSC15 ``rsc15_xe_shared_100_best`` (cross-entropy);
* the README table's RSC15 cross-entropy row (this project's configuration B);
* ``experiment_setup.py`` of ``hidasib/gru4rec_third_party_comparison`` (Hidasi & Czapp, RecSys'23; spec section
  9, "third-party paper setups"): the other loss of each dataset (Yoochoose and Rees46 BPR-max; Coveo,
  RetailRocket and Diginetica cross-entropy);
* ``examples/rsc15/run_rsc15.py`` of ``hidasib/GRU4Rec`` (spec section 9): RSC15 BPR-max with shared embedding
  (its dropout and final activation are not stated: the Theano class defaults 0 and linear), and this project's
  configuration A (``bench/rsc15_configs.py``: the authors' RSC15 BPR-max setting, elu-0.5, 100 units).

Every entry uses shared embedding and ``n_sample=2048`` in its source; those and ``logq`` stay what the study fixes
(``--fixed_params``). Only the searched parameters of an entry are used; an entry that lacks a searched parameter
or lies outside the space is reported and skipped (:func:`portfolio_values`).

Example::

    >>> from gru4rec_tf.params import GRU4RecParams
    >>> from gru4rec_tf.tune.search_space import SearchSpace
    >>> base = GRU4RecParams.from_string("loss=bpr-max")
    >>> entries, skipped = portfolio_values(SearchSpace.default("bpr-max"), base)
    >>> entries[0][0], entries[0][1]["layers"], skipped
    ('retailrocket_bprmax_shared_best', 224, [])
"""
from __future__ import annotations

import dataclasses
from typing import Any

from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.tune import search_space

_PT = "hidasib/GRU4Rec_PyTorch_Official paramfiles/"
_TP = "hidasib/gru4rec_third_party_comparison experiment_setup.py (spec section 9)"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One published configuration: ``name``, ``loss``, ``params`` (``k=v,...``, official names), ``source``."""
    name: str
    loss: str
    params: str
    source: str


def _bpr(final_act, layers, batch, p_embed, p_hidden, lr, momentum, alpha, bpreg):
    return (f"final_act={final_act},layers={layers},batch_size={batch},dropout_p_embed={p_embed},"
            f"dropout_p_hidden={p_hidden},learning_rate={lr},momentum={momentum},sample_alpha={alpha},bpreg={bpreg}")


def _xe(layers, batch, p_embed, p_hidden, lr, momentum, alpha):
    return (f"layers={layers},batch_size={batch},dropout_p_embed={p_embed},dropout_p_hidden={p_hidden},"
            f"learning_rate={lr},momentum={momentum},sample_alpha={alpha}")


# In the order a study tries them: the authors' own tuned winners first, then the other-loss setups, then RSC15.
PORTFOLIO: tuple[Entry, ...] = (
    Entry("retailrocket_bprmax_shared_best", "bpr-max", _bpr("elu-0.5", 224, 80, 0.5, 0.05, 0.05, 0.4, 0.4, 1.95),
          _PT + "retailrocket_bprmax_shared_best.py"),
    Entry("diginetica_bprmax_shared_best", "bpr-max", _bpr("elu-1", 512, 128, 0.5, 0.3, 0.05, 0.15, 0.3, 0.9),
          _PT + "diginetica_bprmax_shared_best.py"),
    Entry("coveo_bprmax_shared_best", "bpr-max", _bpr("elu-1", 512, 144, 0.35, 0.0, 0.05, 0.4, 0.2, 1.85),
          _PT + "coveo_bprmax_shared_best.py"),
    Entry("yoochoose_bprmax", "bpr-max", _bpr("linear", 448, 48, 0.25, 0.0, 0.075, 0.1, 0.2, 0.5), _TP),
    Entry("rees46_bprmax", "bpr-max", _bpr("elu-0.5", 512, 32, 0.1, 0.0, 0.03, 0.55, 0.2, 0.75), _TP),
    Entry("rsc15_bprmax_shared_100", "bpr-max", _bpr("linear", 100, 32, 0.0, 0.0, 0.2, 0.1, 0.0, 0.5),
          "hidasib/GRU4Rec examples/rsc15/run_rsc15.py (R@20 .7261, M@20 .3124; dropout and final_act not stated: "
          "the class defaults)"),
    Entry("rsc15_bprmax_elu05_100", "bpr-max", _bpr("elu-0.5", 100, 32, 0.0, 0.0, 0.05, 0.0, 0.5, 1.0),
          "this project's configuration A (bench/rsc15_configs.py; the authors' RSC15 BPR-max setting)"),
    Entry("yoochoose_xe_shared_best", "cross-entropy", _xe(480, 48, 0.0, 0.2, 0.07, 0.0, 0.2),
          _PT + "yoochoose_xe_shared_best.py"),
    Entry("rees46_xe_shared_best", "cross-entropy", _xe(512, 240, 0.45, 0.0, 0.065, 0.0, 0.5),
          _PT + "rees46_xe_shared_best.py"),
    Entry("retailrocket_xe", "cross-entropy", _xe(192, 240, 0.5, 0.05, 0.085, 0.3, 0.3), _TP),
    Entry("diginetica_xe", "cross-entropy", _xe(192, 128, 0.45, 0.15, 0.1, 0.0, 0.0), _TP),
    Entry("coveo_xe", "cross-entropy", _xe(512, 32, 0.4, 0.15, 0.03, 0.0, 0.0), _TP),
    Entry("rsc15_xe_shared_100_best", "cross-entropy", _xe(100, 32, 0.0, 0.4, 0.2, 0.2, 0.5),
          _PT + "rsc15_xe_shared_100_best.py"),
    Entry("rsc15_xe_readme", "cross-entropy", _xe(100, 32, 0.1, 0.0, 0.1, 0.0, 0.75),
          "README table of hidasib/GRU4Rec_PyTorch_Official, RSC15 row (this project's configuration B)"),
)


def entries_for(loss: str, portfolio: tuple[Entry, ...] = PORTFOLIO) -> list[Entry]:
    """The entries of ``loss``; ValueError when there is none (a study cannot start from an empty portfolio)."""
    found = [e for e in portfolio if e.loss == loss]
    if not found:
        losses = sorted({e.loss for e in portfolio})
        raise ValueError(f"--initial_params portfolio: the portfolio has no configuration for loss={loss} (it has "
                         f"{', '.join(losses)}); give --initial_params none or k=v,...")
    return found


def entry_values(entry: Entry, space, base: GRU4RecParams) -> dict[str, Any]:
    """The searched values of ``entry`` for ``space``; ValueError with the reason when the space rejects it."""
    names = [item.split("=", 1)[0] for item in entry.params.split(",")]
    lacking = [n for n in space.names if n not in names]
    if lacking:
        raise ValueError(f"it has no value for the searched {', '.join(lacking)}")
    text = ",".join(item for item in entry.params.split(",") if item.split("=", 1)[0] in space.names)
    params = base.with_overrides(text)  # ValueError: the parameters reject it
    return search_space.values_in_space(space, params)  # ValueError: the space rejects a value


def portfolio_values(space, base: GRU4RecParams, portfolio: tuple[Entry, ...] = PORTFOLIO
                     ) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """``([(name, searched values)], [(name, reason skipped)])`` of ``base.loss``'s entries, in portfolio order.

    ValueError when the loss has no entry; an entry the space or the parameters reject is skipped with its reason.
    """
    usable, skipped, seen = [], [], []
    for entry in entries_for(base.loss, portfolio):
        try:
            values = entry_values(entry, space, base)
        except ValueError as err:
            skipped.append((entry.name, str(err).splitlines()[0]))
            continue
        if values in seen:  # two entries that differ only in parameters the study does not search
            skipped.append((entry.name, "the same searched values as an earlier entry"))
            continue
        seen.append(values)
        usable.append((entry.name, values))
    return usable, skipped


def resolve_initial(text: str, space, base: GRU4RecParams) -> tuple[list[tuple[str, dict]], list[tuple[str, str]]]:
    """``--initial_params``: ``portfolio`` (default), ``none`` / empty, ``best_known``, or ``k=v,...``.

    Returns ``([(name, searched values)], [(name, reason skipped)])``; ValueError (one line) when the text does not
    parse or the loss has no portfolio.
    """
    from gru4rec_tf.tune.search_space import initial_values  # pylint: disable=g-import-not-at-top
    text = (text or "").strip()
    if text in ("", "none"):
        return [], []
    if text == "portfolio":
        return portfolio_values(space, base)
    if "=" not in text and text != "best_known":
        raise ValueError(f"--initial_params: expected portfolio, none, best_known or k=v,... (searched values), "
                         f"got {text!r}")
    return [(text if text == "best_known" else "given", initial_values(text, space, base))], []
