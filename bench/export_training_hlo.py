"""Exports the compiled training loop as an XLA HLO module plus its inputs, to run where TensorFlow cannot go.

The lent GPU machines have JAX but no TensorFlow, and a TensorFlow GPU wheel (546 MiB, plus ~1.5 GiB of CUDA 12
libraries) cannot be carried within their 64 MiB transfer limit. What can travel is the XLA computation that
``Trainer`` compiles for one chunk of ``steps_per_call`` steps (the whole multi-step loop: resets, forward, loss,
gradients, Adagrad updates, row writes), with one real chunk of inputs and the variable values.
``bench/run_training_hlo.py`` compiles that module with the XLA bundled in JAX for any backend and times it.

Writes ``<out>/<case>/loop.pb`` (HloModuleProto), ``inputs.npz`` (every parameter, in order), ``reference.npz``
(the step losses and updated item vectors TensorFlow computed from the same inputs), and ``meta.json``. Usage::

    .venv/bin/python bench/export_training_hlo.py --out bench/.hlo
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from rsc15_configs import CONFIG_A, CONFIG_B, RSC15  # noqa: E402  pylint: disable=wrong-import-position

CASES = {  # name -> (parameters, data)
    "rsc15_A": (CONFIG_A, "rsc15"),
    "rsc15_B": (CONFIG_B, "rsc15"),
    "rsc15_A_batch256": (CONFIG_A.replace("batch_size=32", "batch_size=256"), "rsc15"),
    "rsc15_A_layers512": (CONFIG_A.replace("layers=100", "layers=512"), "rsc15"),
    # train_speed.py's 1M-item scale case: its item tables are too large to carry, so they are made on arrival
    "synthetic1M_A": (CONFIG_A, "synthetic1M"),
}
MAX_CARRIED_BYTES = 32 * 2 ** 20  # larger parameters are described (shape, dtype, how to fill) instead of saved


def without_copies(hlo_module: bytes) -> bytes:
    """The module with every array ``copy`` turned into ``maximum(x, x)`` (the same values).

    TensorFlow's XLA bridge ends the computation with copies of the returned variables; JAX's HLO-to-StableHLO
    import keeps them as ``mhlo.copy``, which its CPU compiler accepts and its GPU compiler rejects.
    """
    from tensorflow.compiler.xla.service import hlo_pb2  # pylint: disable=g-import-not-at-top
    module = hlo_pb2.HloModuleProto.FromString(hlo_module)
    for computation in module.computations:
        for instruction in computation.instructions:
            if instruction.opcode == "copy" and not instruction.shape.tuple_shapes:
                instruction.opcode = "maximum"
                instruction.operand_ids.append(instruction.operand_ids[0])
    return module.SerializeToString()


def export_case(name, param_string, train_data, vocab, out_dir):  # pylint: disable=too-many-locals
    import numpy as np  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.train import routine  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.params import GRU4RecParams  # pylint: disable=g-import-not-at-top
    params = GRU4RecParams.from_string(param_string)
    trainer = routine.build_trainer(vocab.support, params, seed=1)
    model = trainer.model
    chunk = next(iter(trainer.make_schedule(train_data).chunks(trainer.steps_per_call)))
    samples = trainer.sampler.sample(chunk.n_steps).numpy()
    rows = trainer.distinct_rows(chunk, samples)
    n_rows = trainer.row_budget.segments(rows[0])[0][2]
    loop = trainer.host_steps.loop(n_rows)
    size = trainer.steps_per_call  # the loop's static number of steps (an epoch may have fewer)

    def padded(array):
        return np.concatenate([array, np.zeros((size - len(array),) + array.shape[1:], array.dtype)])

    args = tf.nest.map_structure(tf.convert_to_tensor, (
        *(padded(a) for a in (chunk.inputs, chunk.targets, chunk.valid, chunk.reset, samples)),
        tuple(type(r)(*(padded(field) for field in r)) for r in rows),
        tuple(model.initial_states(params.batch_size)), np.int32(0), np.int32(chunk.n_steps)))
    concrete = loop.get_concrete_function(*args)
    variables = {id(v.handle): v for v in list(model.variables) + list(trainer.optimizer.variables)
                 + [trainer.dropout_rng.state]}
    # Captured inputs are variables (updated by the loop, returned after its own outputs, in this order) or
    # captured constant tensors (e.g. the sampler's log-support table), which are only read.
    captured = [variables.get(id(handle), handle) for handle in concrete.captured_inputs]
    is_variable = [isinstance(c, tf.Variable) for c in captured]
    hlo = without_copies(loop.experimental_get_compiler_ir(*args)(stage="hlo_serialized"))
    parameters = [t.numpy() for t in tf.nest.flatten(args)] + [c.numpy() for c in captured]
    names = [f"arg{i}" for i in range(len(tf.nest.flatten(args)))] + [getattr(c, "name", "constant") for c in captured]
    synthesized = {i: {"shape": list(p.shape), "dtype": p.dtype.name,
                       "fill": "zeros" if "_acc" in names[i] or "_vel" in names[i] else "normal"}
                   for i, p in enumerate(parameters) if p.nbytes > MAX_CARRIED_BYTES}
    _, losses = loop(*args)
    losses = losses[:chunk.n_steps]
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "loop.pb"), "wb") as f:
        f.write(hlo)
    np.savez_compressed(os.path.join(case_dir, "inputs.npz"),
                        *(np.zeros(1, p.dtype) if i in synthesized else p for i, p in enumerate(parameters)))
    if not synthesized:  # with made-up tables there is nothing to compare with
        np.savez_compressed(os.path.join(case_dir, "reference.npz"), losses=losses.numpy(),
                            item_vectors=model.item_vectors.numpy())
    meta = {"case": name, "params": param_string, "steps": int(chunk.n_steps),
            "events": int(chunk.n_transitions), "n_items": len(vocab), "n_rows": int(n_rows),
            "n_args": len(tf.nest.flatten(args)), "captured_is_variable": is_variable,
            "variables": [c.name for c in captured if isinstance(c, tf.Variable)],
            "state_outputs": len(model.gru_layers), "tensorflow": tf.__version__,
            "synthesized": {str(i): spec for i, spec in synthesized.items()}}
    with open(os.path.join(case_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps({k: meta[k] for k in ("case", "steps", "events", "n_rows")}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=os.path.join(HERE, ".hlo"))
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {sorted(CASES)}")
    args = parser.parse_args()
    if not os.path.isdir(RSC15):
        sys.exit(f"rsc15_100k not found at {RSC15} (../shared/data is needed for this benchmark)")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    datasets = {}
    for name in args.cases.split(","):
        param_string, data_name = CASES[name]
        if data_name not in datasets:
            datasets[data_name] = _load(data_name)
        export_case(name, param_string, *datasets[data_name], args.out)


def _load(data_name):
    """``(SessionData, ItemVocabulary)`` of the training split of ``data_name``."""
    from gru4rec_tf.data import synthetic  # pylint: disable=g-import-not-at-top
    from gru4rec_tf.data.vocabulary import ItemVocabulary
    from gru4rec_tf.data.session_data import SessionData
    from gru4rec_tf.data.event_log import load_events
    if data_name == "rsc15":
        train = load_events(os.path.join(RSC15, "train_full.tsv"))
    else:  # the same generator settings as train_speed.py's 1M-item case
        events = synthetic.generate_sessions(n_items=1_000_000, n_sessions=400_000, seed=0, span_days=30.0)
        train, _ = synthetic.train_test_split_by_time(events, test_days=1.0)
    vocab = ItemVocabulary.from_events(train)
    return SessionData.from_events(train, vocab), vocab


if __name__ == "__main__":
    main()
