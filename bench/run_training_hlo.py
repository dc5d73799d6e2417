"""Times the exported training loop (``bench/export_training_hlo.py``) with the XLA that ships in JAX.

Needs only NumPy and JAX, so it runs on the lent GPU machines, which have no TensorFlow. For each exported case and
each requested backend it compiles the HLO module, runs one chunk on the exported inputs and checks the step losses
and updated item vectors against TensorFlow's, then times ``--chunks`` consecutive chunks, feeding the updated
variables and hidden state of each into the next (the same chunk of data each time: every shape is static, so the
cost does not depend on the data). Prints a table and writes JSON lines to ``--results``. Usage::

    python3 bench/run_training_hlo.py --cases_dir bench/.hlo --backends gpu,cpu --results gpu_hlo.jsonl
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _compile(backend_name, hlo_bytes):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.extend.backend  # pylint: disable=g-import-not-at-top
    from jax._src.lib import xla_client  # pylint: disable=g-import-not-at-top
    backend = jax.extend.backend.get_backend(backend_name)
    device = backend.local_devices()[0]
    mlir = xla_client._xla.mlir  # pylint: disable=protected-access
    if hasattr(mlir, "hlo_to_stablehlo"):
        stablehlo = mlir.hlo_to_stablehlo(hlo_bytes)
    else:  # older jaxlib
        stablehlo = mlir.xla_computation_to_mlir_module(xla_client.XlaComputation(hlo_bytes))
    start = time.perf_counter()
    if hasattr(backend, "compile_and_load"):
        executable = backend.compile_and_load(stablehlo, xla_client.DeviceList((device,)),
                                              xla_client.CompileOptions())
    else:  # older jaxlib
        executable = backend.compile(stablehlo, xla_client.CompileOptions())
    return executable, device, time.perf_counter() - start


def run_case(case_dir, backend_name, n_chunks):
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update("jax_enable_x64", True)  # TensorFlow's RNG state is int64
    with open(os.path.join(case_dir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with open(os.path.join(case_dir, "loop.pb"), "rb") as f:
        executable, device, compile_s = _compile(backend_name, f.read())
    inputs = np.load(os.path.join(case_dir, "inputs.npz"))
    synthesized = meta.get("synthesized", {})
    rng = np.random.default_rng(0)

    def parameter(i):  # tables too large to carry are made here: zero slots, small random weights
        spec = synthesized.get(str(i))
        if spec is None:
            return inputs[f"arr_{i}"]
        if spec["fill"] == "zeros":
            return np.zeros(spec["shape"], spec["dtype"])
        return (rng.standard_normal(spec["shape"], dtype=np.float32) * 0.05).astype(spec["dtype"])

    parameters = [jax.device_put(parameter(i), device) for i in range(len(inputs.files))]
    n_args, n_states = meta["n_args"], meta["state_outputs"]
    state_index = n_args - 2 - n_states  # the flattened arguments end with states..., begin, end

    outputs = executable.execute(parameters)
    check = {"max_abs_loss_diff": None, "max_abs_item_vector_diff": None}
    if os.path.exists(os.path.join(case_dir, "reference.npz")):
        reference = np.load(os.path.join(case_dir, "reference.npz"))
        losses = np.asarray(outputs[n_states])[:meta["steps"]]
        item_vectors = np.asarray(outputs[n_states + 1 + meta["variables"].index("Wy:0")])
        check = {"max_abs_loss_diff": float(np.abs(losses - reference["losses"]).max()),
                 "max_abs_item_vector_diff": float(np.abs(item_vectors - reference["item_vectors"]).max())}

    variable_positions = [n_args + i for i, is_var in enumerate(meta["captured_is_variable"]) if is_var]

    def next_parameters(params, outs):
        params = list(params)
        params[state_index:state_index + n_states] = outs[:n_states]
        for position, updated in zip(variable_positions, outs[n_states + 1:], strict=True):
            params[position] = updated
        return params

    params = next_parameters(parameters, outputs)
    for _ in range(2):  # warm-up
        outs = executable.execute(params)
        params = next_parameters(params, outs)
    jax.block_until_ready(params)
    times = []
    for _ in range(n_chunks):
        start = time.perf_counter()
        outs = executable.execute(params)
        jax.block_until_ready(outs)
        times.append(time.perf_counter() - start)
        params = next_parameters(params, outs)
    median = float(np.median(times))
    return {"case": meta["case"], "backend": backend_name, "device": str(device.device_kind),
            "n_items": meta["n_items"], "n_rows": meta["n_rows"],
            "compile_s": round(compile_s, 2), "steps_per_chunk": meta["steps"], "events_per_chunk": meta["events"],
            "chunk_ms_median": round(median * 1e3, 2), "chunk_ms_min": round(min(times) * 1e3, 2),
            "step_us_median": round(median / meta["steps"] * 1e6, 1),
            "events_per_sec": round(meta["events"] / median),
            "final_loss_mean": float(np.mean(np.asarray(outs[n_states])[:meta["steps"]])),
            **check, "jax": jax.__version__, "tensorflow_exported_with": meta["tensorflow"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases_dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".hlo"))
    parser.add_argument("--backends", default="gpu,cpu")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--results", default="training_hlo.jsonl")
    args = parser.parse_args()
    cases = sorted(d for d in os.listdir(args.cases_dir) if os.path.isfile(os.path.join(args.cases_dir, d, "loop.pb")))
    if not cases:
        sys.exit(f"no exported cases under {args.cases_dir}; run bench/export_training_hlo.py first")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs", flush=True)
    rows = []
    with open(args.results, "w", encoding="utf-8") as results:
        for backend in args.backends.split(","):
            for case in cases:
                try:
                    row = run_case(os.path.join(args.cases_dir, case), backend, args.chunks)
                except Exception as error:  # pylint: disable=broad-except  (report and go on to the next case)
                    row = {"case": case, "backend": backend, "error": f"{type(error).__name__}: {error}"[:500]}
                print(json.dumps(row), flush=True)
                results.write(json.dumps(row) + "\n")
                rows.append(row)
    print("\n| case | backend | device | µs/step | events/s | compile s | max |Δloss| vs TF |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['backend']} | error: {r['error'][:80]} | | | | |")
        else:
            diff = "n/a (tables made up)" if r["max_abs_loss_diff"] is None else f"{r['max_abs_loss_diff']:.1e}"
            print(f"| {r['case']} | {r['backend']} | {r['device']} | {r['step_us_median']} | {r['events_per_sec']:,} "
                  f"| {r['compile_s']} | {diff} |")


if __name__ == "__main__":
    main()
