"""The arithmetic and memory floor of a GRU4Rec training step and of a full-catalogue evaluation, on this machine.

The issue's floor counts the step's nominal FLOPs at NumPy's sgemm rate at one shape (the output layer's
``[B, h] x [h, B + n_sample]``). This module measures a fuller floor, still a lower bound for any implementation of
the same algorithm with the same BLAS:

* **products**: each matrix product of the step timed by NumPy at its own shape and transposition, same threads:
  per GRU layer the input, the update/reset and the candidate products, forward and both backward products each;
  for the output layer the scores ``H Y^T``, ``dS Y`` and ``dS^T H`` on all ``B + n_sample`` columns;
* **row traffic**: the item rows the step must move at least once: reading the output rows for the forward pass,
  and the optimizer's row update (read the parameter, its gradient and the Adagrad accumulator, write both back;
  with momentum also read and write the velocity), each pass over ``[B + n_sample, h]`` float32 timed as NumPy's
  streaming rate of ``np.add`` on arrays of that size (cache-warm, so optimistic).

Everything else a step does (the GRU's and the loss's elementwise work, sampling, the distinct rows) is left out,
so the floor is below what any implementation can reach. The evaluation floor is the scoring product
``[rows, h] x [h, n_items]`` and the GRU's forward products per evaluated event, at a block of 512 rows.

Usage (prints JSON; ``bench/compare_official.py`` runs it in each repetition)::

    OPENBLAS_NUM_THREADS=2 .venv/bin/python bench/step_floor.py --batch 80 --layers 224 --n_sample 2048 \\
        --first_input 224 --momentum --n_items 10000
"""
import argparse
import json
import time

import numpy as np

EVAL_ROWS = 512  # the evaluation's scoring block (our Evaluator's default batch of active sessions)


def best_seconds(fn, calls: int = 50, rounds: int = 5) -> float:
    """The best mean seconds per call of ``fn`` over ``rounds`` rounds of ``calls`` calls (one warm-up call each)."""
    best = float("inf")
    for _ in range(rounds):
        fn()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def product(rng, m: int, k: int, n: int, transpose_a: bool = False, transpose_b: bool = False) -> dict:
    """Seconds and FLOPs of one ``[m, k] x [k, n]`` float32 product, operands stored as the step stores them."""
    a = rng.random((k, m) if transpose_a else (m, k), dtype=np.float32)
    b = rng.random((n, k) if transpose_b else (k, n), dtype=np.float32)
    left, right = (a.T if transpose_a else a), (b.T if transpose_b else b)
    return {"shape": [m, k, n], "seconds": best_seconds(lambda: left @ right), "flops": 2.0 * m * k * n}


def dense_products(rng, rows: int, d_in: int, h: int, backward: bool) -> list:
    """One GRU layer's products: input ``[rows, d_in] x [d_in, 3h]``, update/reset ``[rows, h] x [h, 2h]`` and
    candidate ``[rows, h] x [h, h]``; with ``backward`` also each one's input gradient and weight gradient."""
    shapes = ((d_in, 3 * h), (h, 2 * h), (h, h)) if d_in else ((h, 2 * h), (h, h))  # one-hot input: a row gather
    out = []
    for k, n in shapes:
        out.append(product(rng, rows, k, n))
        if backward:
            out.append(product(rng, rows, n, k, transpose_b=True))  # d(input) = dG W^T
            out.append(product(rng, k, rows, n, transpose_a=True))  # dW = X^T dG
    return out


def output_products(rng, batch: int, h: int, columns: int) -> list:
    """The output layer's scores ``H Y^T`` and its two backward products ``dS Y`` and ``dS^T H``."""
    return [product(rng, batch, h, columns, transpose_b=True), product(rng, batch, columns, h),
            product(rng, columns, batch, h, transpose_a=True)]


def streaming_bytes_per_second(rng, rows: int, width: int) -> float:
    """NumPy's rate of ``np.add(x, y, out=z)`` over ``[rows, width]`` float32 (three arrays' bytes per call)."""
    x, y, z = (rng.random((rows, width), dtype=np.float32) for _ in range(3))
    return 3 * x.nbytes / best_seconds(lambda: np.add(x, y, out=z), calls=200)


def layer_inputs(layers: list, first_input: int) -> list:
    """Each GRU layer's input width; ``first_input`` 0 means one-hot input (its product is a row gather)."""
    return [first_input] + layers[:-1]


def training_floor(rng, batch: int, layers: list, n_sample: int, momentum: bool, first_input: int) -> dict:
    """The step's floor: its products at NumPy's speed plus its item-row passes at NumPy's streaming rate."""
    columns, h = batch + n_sample, layers[-1]
    products = [p for d_in, width in zip(layer_inputs(layers, first_input), layers, strict=True)
                for p in dense_products(rng, batch, d_in, width, backward=True)]
    products += output_products(rng, batch, h, columns)
    passes = 1 + (7 if momentum else 5)  # forward read; update reads param, grad, acc[, vel], writes them back
    bandwidth = streaming_bytes_per_second(rng, columns, h)
    row_seconds = passes * columns * h * 4 / bandwidth
    product_seconds = sum(p["seconds"] for p in products)
    return {"products_seconds": product_seconds, "products_flops": sum(p["flops"] for p in products),
            "row_passes": passes, "row_seconds": row_seconds, "bandwidth_gb_per_s": bandwidth / 1e9,
            "floor_step_seconds": product_seconds + row_seconds,
            "floor_events_per_sec": batch / (product_seconds + row_seconds), "products": products}


def evaluation_floor(rng, layers: list, n_items: int, first_input: int) -> dict:
    """Seconds per evaluated event: the GRU's forward products and the full-catalogue scoring, 512 rows a block."""
    products = [p for d_in, width in zip(layer_inputs(layers, first_input), layers, strict=True)
                for p in dense_products(rng, EVAL_ROWS, d_in, width, backward=False)]
    products.append(product(rng, EVAL_ROWS, layers[-1], n_items, transpose_b=True))
    return {"seconds_per_event": sum(p["seconds"] for p in products) / EVAL_ROWS, "products": products}


def output_sgemm_gflops(rng, batch: int, h: int, columns: int) -> float:
    """The issue's reference: NumPy's best GFLOP/s at ``[B, h] x [h, B + n_sample]`` (row-major operands)."""
    measured = product(rng, batch, h, columns)
    return measured["flops"] / measured["seconds"] / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--layers", required=True, help="GRU layer widths, comma-separated")
    parser.add_argument("--n_sample", type=int, required=True)
    parser.add_argument("--first_input", type=int, required=True,
                        help="the first GRU layer's input width: the embedding size, the last layer's width with a "
                             "constrained embedding, or 0 for one-hot input (a row gather, no product)")
    parser.add_argument("--momentum", action="store_true", help="the optimizer keeps a velocity per row")
    parser.add_argument("--n_items", type=int, default=0, help="catalogue size for the evaluation floor (0: none)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = [int(v) for v in args.layers.split(",")]
    result = {"sgemm_gflops": output_sgemm_gflops(rng, args.batch, layers[-1], args.batch + args.n_sample),
              "training": training_floor(rng, args.batch, layers, args.n_sample, args.momentum, args.first_input)}
    if args.n_items:
        result["evaluation"] = evaluation_floor(rng, layers, args.n_items, args.first_input)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
