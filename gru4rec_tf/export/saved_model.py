"""Export a trained GRU4Rec as a TensorFlow Serving SavedModel (spec §8).

GRU4Rec keeps a hidden state per session while TF Serving is stateless, so the SavedModel serves a session in two
exact ways, both ranking the whole catalogue (or a candidate list) with tensorflow-recommenders' brute-force top-k:

* **whole session** (``serving_default``): the session's events so far → top-k next items, plus the final hidden
  state, so a client can continue with ``step``;
* **one event** (``step``): the current event and the state returned by the previous call → top-k and the new
  state; O(1) per event however long the session is.

``serving_candidates`` and ``step_candidates`` are the same with scoring restricted to a per-session candidate list.
Original item IDs go in and come out (int64 or string, as in the training data); the vocabulary is a lookup-table
asset inside the SavedModel. Unknown IDs are skipped exactly as evaluation skips them (the state is left unchanged)
and counted in ``num_unknown``.

Signatures (``B`` = batch of sessions; every input has the batch dimension first, as TF Serving batching needs;
``ID`` = int64 or string, see :func:`id_dtype`)::

  serving_default / serving_candidates
    in   items         ID    [B, L]  the session's events, oldest first, right-padded (padding is ignored)
         lengths       int32 [B]     number of events of each row (entries past it are padding)
         k             int32 [B]     number of results wanted (clipped to [0, min(max_k, n_items)])
         exclude_seen  bool  [B]     drop the session's own items from the results
         candidates    ID    [B, C]  (serving_candidates only) rank only these items; unknown IDs are ignored
  step / step_candidates
    in   items         ID    [B]     the current event of each session
         state         float [B, S]  the ``state`` output of the previous call; all zeros for a new session
         k             int32 [B]
         exclude       ID    [B, E]  items to drop from the results (e.g. those already seen); IDs not in the
                                     catalogue are ignored, so rows are padded with ``PAD_ID`` (-1 or "")
         candidates    ID    [B, C]  (step_candidates only)
  outputs of all four
         item_ids      ID    [B, K]  top items, best first; K = the largest clipped k of the batch
         scores        float [B, K]  raw scores ``h·W_y + b_y`` (spec §4, no final activation)
         num_results   int32 [B]     valid entries of the row; the rest hold ``PAD_ID`` and ``PAD_SCORE``
         num_unknown   int32 [B]     events of the request that are not in the catalogue (skipped)
         state         float [B, S]  hidden state after the request's events (layers concatenated)

TF Serving's ``pad_variable_length_inputs`` batching option pads every variable-length input with the first element
of the request's tensor. ``lengths`` makes that harmless for ``items``; for ``exclude`` and ``candidates`` a client
should make the first element ``PAD_ID`` (a leading ``PAD_ID`` column, as :mod:`serving.client` sends), else the
padding would add row 0's first ID to the other rows of a multi-session request.

A row with no known event (empty session, only unknown IDs, or a zero state and an unknown item) has
``num_results`` 0: GRU4Rec has nothing to condition on. Bad *values* never raise inside the graph (under TF
Serving's batching one failing request would fail the whole merged batch); they give the defined results above.
The one in-graph check is that all inputs have the same batch size, which TF Serving's batching itself enforces
before merging, so it can only fail an unbatched request.

The export's parts live in modules of their own: :mod:`.serving_module` (the ``tf.Module`` and its signatures),
:mod:`.topk` (scoring, the exact top-k, exclusions and candidates), :mod:`.warmup` (TF Serving warm-up requests)
and :mod:`.export_dir` (directory checks, atomic writing, the vocabulary asset and the export info). This module is
their front: :func:`export_saved_model`, plus the names that commands and clients use (:func:`read_export_info`,
:func:`export_dir_problem`, :data:`NOT_EMPTY`, :func:`id_dtype`).

Example:
  >>> path = export_saved_model(model, vocab, "/models/gru4rec/1")
  >>> serve = tf.saved_model.load(path).signatures["serving_default"]
  >>> out = serve(items=tf.constant([[100042, 100007]], tf.int64), lengths=tf.constant([2]),
  ...             k=tf.constant([20]), exclude_seen=tf.constant([False]))
  >>> out["item_ids"], out["scores"]
"""
import os

import tensorflow as tf

from gru4rec_tf import fileio
from gru4rec_tf.export import export_dir as export_dir_lib
from gru4rec_tf.export import warmup
from gru4rec_tf.export.export_dir import NOT_EMPTY, export_dir_problem, read_export_info
from gru4rec_tf.export.serving_module import GRU4RecServing, id_dtype
from gru4rec_tf.export.signatures import VOCAB_ASSET, WARMUP_FILE

__all__ = ["NOT_EMPTY", "GRU4RecServing", "export_dir_problem", "export_saved_model", "id_dtype", "read_export_info"]


def export_saved_model(model, vocab, export_dir: str, *, max_k: int = 100, write_warmup: bool = True,
                       overwrite: bool = False, top_k_block: int | None | str = "auto") -> str:
    """Writes the serving SavedModel of ``model`` and ``vocab`` to ``export_dir``; returns its absolute path.

    ``export_dir`` is the version directory TF Serving loads (``<model_base_path>/<version>``); it must not exist
    or be empty, unless ``overwrite`` (which replaces an existing SavedModel, never another kind of directory).
    The SavedModel is written next to it and renamed into place, so TF Serving never sees a half-written version.
    ``max_k`` caps ``k`` (and the output width). With ``write_warmup``, warm-up requests for every signature go
    to ``assets.extra/tf_serving_warmup_requests``. ``top_k_block`` is the block size of the exact two-stage top-k
    (:func:`.topk.blocked_top_k`; ``"auto"``: :func:`.topk.default_top_k_block`, ``None``: plain
    ``tf.math.top_k``); results do not depend on it.

    Example:
      >>> export_saved_model(saved.model, saved.vocab, "/models/gru4rec/3")
      '/models/gru4rec/3'
    """
    export_dir = os.path.abspath(export_dir)
    export_dir_lib.check_export_dir(export_dir, overwrite)
    with export_dir_lib.staging_dir(export_dir) as staging:
        vocab_file = os.path.join(staging, "vocab", VOCAB_ASSET)
        os.makedirs(os.path.dirname(vocab_file))
        export_dir_lib.write_vocab_file(vocab, vocab_file)
        module = GRU4RecServing(model, vocab, vocab_file, max_k=max_k, top_k_block=top_k_block)
        saved = os.path.join(staging, "saved_model")
        tf.saved_model.save(module, saved, signatures=module.signatures())
        export_dir_lib.write_export_info(saved, module.info())
        if write_warmup:
            warmup.write_warmup_file(os.path.join(export_dir_lib.extra_dir(saved), WARMUP_FILE),
                                     warmup.warmup_requests(module, vocab))
        fileio.replace_dir(saved, export_dir)
    return export_dir
