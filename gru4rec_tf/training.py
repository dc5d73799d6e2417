"""The one training routine: seeds, model, :class:`~gru4rec_tf.trainer.Trainer`, epochs, and what they produced.

Every entry point trains through :func:`train` (``gru4rec train``, the TFX Trainer's ``run_fn``, the benchmarks),
so what training does (seeding, logging, the summary it reports) is written once.

Example:
  >>> vocab = ItemVocabulary.from_events(train_events)
  >>> result = train(SessionData.from_events(train_events, vocab), vocab, params, seed=42)
  >>> result.summary()["train_events_per_sec"]
  >>> model_io.save_model("model/", result.model, result.vocab, seed=result.seed)
"""
import dataclasses
from typing import List, Optional

import tensorflow as tf
from absl import logging

from gru4rec_tf import model as model_lib
from gru4rec_tf import trainer as trainer_lib
from gru4rec_tf.params import GRU4RecParams
from gru4rec_tf.sessions import SessionData
from gru4rec_tf.vocabulary import ItemVocabulary


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced: the trained model with its vocabulary, and the epoch history."""
    model: model_lib.GRU4Rec
    vocab: ItemVocabulary
    params: GRU4RecParams
    seed: int
    history: List[trainer_lib.EpochStats]
    train_events: int  # transitions (events with a successor in their session) per epoch

    @property
    def train_seconds(self) -> float:
        return sum(h.seconds for h in self.history)

    @property
    def train_events_per_sec(self) -> float:
        seconds = self.train_seconds
        return sum(h.events for h in self.history) / seconds if seconds else 0.0

    def summary(self) -> dict:
        """JSON-ready description: parameters, data size, per-epoch loss and time, throughput."""
        return {
            "epochs": len(self.history), "n_items": len(self.vocab), "params": self.params.to_dict(),
            "seed": self.seed, "train_events": self.train_events, "train_seconds": self.train_seconds,
            "train_events_per_sec": self.train_events_per_sec,
            "epoch_loss": [h.loss for h in self.history], "epoch_seconds": [h.seconds for h in self.history],
        }


def build_trainer(support, params: GRU4RecParams, *, seed: int = 42, steps_per_call: int = 256,
                  jit_compile: bool = True) -> trainer_lib.Trainer:
    """A new model (initialised from ``seed``) and its :class:`~gru4rec_tf.trainer.Trainer` (``.model``)."""
    tf.random.set_seed(seed)
    model = model_lib.GRU4Rec(len(support), params, seed=seed)
    return trainer_lib.Trainer(model, support, params, seed=seed, steps_per_call=steps_per_call,
                               jit_compile=jit_compile)


def train(train_data: SessionData, vocab: ItemVocabulary, params: GRU4RecParams, *, seed: int = 42,
          epochs: Optional[int] = None, steps_per_call: int = 256, jit_compile: bool = True,
          log_every_s: float = 10.0) -> TrainResult:
    """Trains a new GRU4Rec on ``train_data`` for ``epochs`` (default ``params.n_epochs``) epochs.

    Raises:
      FloatingPointError: the loss became NaN or infinite.
    """
    gru_trainer = build_trainer(vocab.support, params, seed=seed, steps_per_call=steps_per_call,
                                jit_compile=jit_compile)
    logging.info("training on %d events, %d sessions, %d items; params %s", train_data.n_events,
                 train_data.n_sessions, len(vocab), params.to_string())
    history = gru_trainer.fit(train_data, epochs, log_every_s=log_every_s)
    result = TrainResult(model=gru_trainer.model, vocab=vocab, params=params, seed=seed, history=history,
                         train_events=train_data.n_transitions)
    logging.info("trained %d epoch(s) in %.1f s (%.0f events/s)", len(history), result.train_seconds,
                 result.train_events_per_sec)
    return result
