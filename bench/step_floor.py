"""The arithmetic and memory floor of a GRU4Rec training step and of a full-catalogue evaluation, on this machine.

The issue's floor counts the step's nominal FLOPs at NumPy's sgemm rate at one shape (the output layer's
``[B, h] x [h, B + n_sample]``). This module measures a fuller floor, below what any implementation of the same
algorithm can reach with the BLAS libraries at hand:

* **products**: each matrix product of the step timed at its own shape and transposition, same threads, by NumPy
  (OpenBLAS), PyTorch (MKL; ``--backend torch`` in a Python that has torch) or inside a TensorFlow loop compiled
  with XLA (``--backend xla``: the kernels our training loop gets); :func:`merge` keeps the faster of several
  backends for each product. Per GRU layer: the input, the update/reset and the candidate products, forward and
  both backward products each; for the output layer the scores ``H Y^T``, ``dS Y`` and ``dS^T H`` on all
  ``B + n_sample`` columns;
* **row traffic**: the item rows the step must move at least once: reading the output rows for the forward pass,
  and the optimizer's row update (read the parameter, its gradient and the Adagrad accumulator, write both back;
  with momentum also read and write the velocity), each pass over ``[B + n_sample, h]`` float32 at the streaming
  rate of an elementwise add of arrays of that size (cache-warm, so optimistic).

Everything else a step does (the GRU's and the loss's elementwise work, dropout masks, sampling, the distinct rows)
is left out. The evaluation floor is the GRU's forward products and the scoring product ``[rows, h] x [h, n_items]``
per evaluated event, at a block of 512 rows (no ranking).

Usage (prints JSON; ``bench/compare_official.py`` runs it in each repetition, with each backend)::

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


class NumpyArrays:
    """NumPy's float32 products (its BLAS: OpenBLAS in our wheels) and elementwise add (one thread)."""
    name = "numpy"

    def __init__(self):
        self._rng = np.random.default_rng(0)

    def random(self, shape):
        return self._rng.random(shape, dtype=np.float32)

    def product_seconds(self, m: int, k: int, n: int, transpose_a: bool, transpose_b: bool) -> float:
        a = self.random((k, m) if transpose_a else (m, k))
        b = self.random((n, k) if transpose_b else (k, n))
        left, right = (a.T if transpose_a else a), (b.T if transpose_b else b)
        return best_seconds(lambda: left @ right)

    def add_seconds(self, rows: int, width: int) -> float:
        x, y, z = (self.random((rows, width)) for _ in range(3))
        return best_seconds(lambda: np.add(x, y, out=z), calls=200)


class TorchArrays(NumpyArrays):
    """PyTorch's CPU float32 products (MKL in its wheels) and add (threads: ``OMP_NUM_THREADS``)."""
    name = "torch"

    def __init__(self):
        import torch  # pylint: disable=g-import-not-at-top  (only in a Python that has it)
        self._torch = torch
        torch.manual_seed(0)

    def random(self, shape):
        return self._torch.rand(shape, dtype=self._torch.float32)

    def add_seconds(self, rows: int, width: int) -> float:
        x, y, z = (self.random((rows, width)) for _ in range(3))
        return best_seconds(lambda: self._torch.add(x, y, out=z), calls=200)


class XlaArrays:
    """The products and adds that a TensorFlow loop compiled with XLA on CPU gets (what our training loop runs):
    each timed as ``calls`` iterations of one compiled ``tf.while_loop``, an iteration's output written into one
    element of the next iteration's operand so that nothing is hoisted out of the loop."""
    name = "xla"

    def __init__(self, calls: int = 200):
        import os  # pylint: disable=g-import-not-at-top
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf  # pylint: disable=g-import-not-at-top  (threads: TF_NUM_INTRAOP_THREADS)
        self._tf, self._calls = tf, calls
        self._rng = np.random.default_rng(0)

    def _loop_seconds(self, operand, other, op) -> float:
        tf = self._tf

        def body(i, a):
            out = op(a, other)
            return i + 1, tf.tensor_scatter_nd_update(a, [[0, 0]], tf.reshape(out[0, 0], [1]))

        loop = tf.function(lambda n, a: tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), a))[1],
                           jit_compile=True)
        count = tf.constant(self._calls)
        return best_seconds(lambda: loop(count, operand).numpy(), calls=1) / self._calls

    def product_seconds(self, m: int, k: int, n: int, transpose_a: bool, transpose_b: bool) -> float:
        tf = self._tf
        a = tf.constant(self._rng.random((k, m) if transpose_a else (m, k), dtype=np.float32))
        b = tf.constant(self._rng.random((n, k) if transpose_b else (k, n), dtype=np.float32))
        return self._loop_seconds(a, b, lambda x, y: tf.matmul(x, y, transpose_a=transpose_a,
                                                               transpose_b=transpose_b))

    def add_seconds(self, rows: int, width: int) -> float:
        x, y = (self._tf.constant(self._rng.random((rows, width), dtype=np.float32)) for _ in range(2))
        return self._loop_seconds(x, y, lambda u, v: u + v)


BACKENDS = {"numpy": NumpyArrays, "torch": TorchArrays, "xla": XlaArrays}


def product(arrays, m: int, k: int, n: int, transpose_a: bool = False, transpose_b: bool = False) -> dict:
    """Seconds and FLOPs of one ``[m, k] x [k, n]`` float32 product, operands stored as the step stores them."""
    return {"shape": [m, k, n], "transposed": [transpose_a, transpose_b],
            "seconds": arrays.product_seconds(m, k, n, transpose_a, transpose_b), "flops": 2.0 * m * k * n}


def dense_products(arrays, rows: int, d_in: int, h: int, backward: bool) -> list:
    """One GRU layer's products: input ``[rows, d_in] x [d_in, 3h]``, update/reset ``[rows, h] x [h, 2h]`` and
    candidate ``[rows, h] x [h, h]``; with ``backward`` also each one's input gradient and weight gradient."""
    shapes = ((d_in, 3 * h), (h, 2 * h), (h, h)) if d_in else ((h, 2 * h), (h, h))  # one-hot input: a row gather
    out = []
    for k, n in shapes:
        out.append(product(arrays, rows, k, n))
        if backward:
            out.append(product(arrays, rows, n, k, transpose_b=True))  # d(input) = dG W^T
            out.append(product(arrays, k, rows, n, transpose_a=True))  # dW = X^T dG
    return out


def output_products(arrays, batch: int, h: int, columns: int) -> list:
    """The output layer's scores ``H Y^T`` and its two backward products ``dS Y`` and ``dS^T H``."""
    return [product(arrays, batch, h, columns, transpose_b=True), product(arrays, batch, columns, h),
            product(arrays, columns, batch, h, transpose_a=True)]


def streaming_bytes_per_second(arrays, rows: int, width: int) -> float:
    """The rate of ``x + y`` into ``z`` over ``[rows, width]`` float32 (three arrays' bytes per call)."""
    return 3 * rows * width * 4 / arrays.add_seconds(rows, width)


def layer_inputs(layers: list, first_input: int) -> list:
    """Each GRU layer's input width; ``first_input`` 0 means one-hot input (its product is a row gather)."""
    return [first_input] + layers[:-1]


def training_floor(arrays, batch: int, layers: list, n_sample: int, momentum: bool, first_input: int) -> dict:
    """The step's floor: its products plus its item-row passes at the streaming rate, with ``arrays``' kernels."""
    columns, h = batch + n_sample, layers[-1]
    products = [p for d_in, width in zip(layer_inputs(layers, first_input), layers, strict=True)
                for p in dense_products(arrays, batch, d_in, width, backward=True)]
    products += output_products(arrays, batch, h, columns)
    passes = 1 + (7 if momentum else 5)  # forward read; update reads param, grad, acc[, vel], writes them back
    bandwidth = streaming_bytes_per_second(arrays, columns, h)
    row_seconds = passes * columns * h * 4 / bandwidth
    product_seconds = sum(p["seconds"] for p in products)
    return {"batch": batch, "products_seconds": product_seconds, "products_flops": sum(p["flops"] for p in products),
            "row_passes": passes, "row_seconds": row_seconds, "bandwidth_gb_per_s": bandwidth / 1e9,
            "floor_step_seconds": product_seconds + row_seconds,
            "floor_events_per_sec": batch / (product_seconds + row_seconds), "products": products}


def evaluation_floor(arrays, layers: list, n_items: int, first_input: int) -> dict:
    """Seconds per evaluated event: the GRU's forward products and the full-catalogue scoring, 512 rows a block."""
    products = [p for d_in, width in zip(layer_inputs(layers, first_input), layers, strict=True)
                for p in dense_products(arrays, EVAL_ROWS, d_in, width, backward=False)]
    products.append(product(arrays, EVAL_ROWS, layers[-1], n_items, transpose_b=True))
    return {"seconds_per_event": sum(p["seconds"] for p in products) / EVAL_ROWS, "products": products}


def output_sgemm_gflops(arrays, batch: int, h: int, columns: int) -> float:
    """The issue's reference: the best GFLOP/s at ``[B, h] x [h, B + n_sample]`` (row-major operands)."""
    measured = product(arrays, batch, h, columns)
    return measured["flops"] / measured["seconds"] / 1e9


def merge(results: list) -> dict:
    """One floor from several backends' results (:func:`main`'s JSON): each product at the fastest backend's time,
    the row passes at the fastest streaming rate; ``sgemm_gflops`` is the first result's."""
    def fastest(products_of_each: list) -> float:
        return sum(min(same["seconds"] for same in group) for group in zip(*products_of_each, strict=True))

    trainings = [r["training"] for r in results]
    products = fastest([t["products"] for t in trainings])
    rows = min(t["row_seconds"] for t in trainings)
    merged = {"sgemm_gflops": results[0]["sgemm_gflops"],
              "training": {"products_seconds": products, "row_seconds": rows,
                           "row_passes": trainings[0]["row_passes"], "floor_step_seconds": products + rows,
                           "floor_events_per_sec": trainings[0]["batch"] / (products + rows)}}
    if all("evaluation" in r for r in results):
        per_block = fastest([r["evaluation"]["products"] for r in results])
        merged["evaluation"] = {"seconds_per_event": per_block / EVAL_ROWS}
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--layers", required=True, help="GRU layer widths, comma-separated")
    parser.add_argument("--n_sample", type=int, required=True)
    parser.add_argument("--first_input", type=int, required=True,
                        help="the first GRU layer's input width: the embedding size, the last layer's width with a "
                             "constrained embedding, or 0 for one-hot input (a row gather, no product)")
    parser.add_argument("--momentum", action="store_true", help="the optimizer keeps a velocity per row")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="numpy",
                        help="whose products to time: NumPy's BLAS, or PyTorch's (MKL) in a Python that has torch")
    parser.add_argument("--n_items", type=int, default=0, help="catalogue size for the evaluation floor (0: none)")
    args = parser.parse_args()
    arrays = BACKENDS[args.backend]()
    layers = [int(v) for v in args.layers.split(",")]
    result = {"backend": arrays.name,
              "sgemm_gflops": output_sgemm_gflops(arrays, args.batch, layers[-1], args.batch + args.n_sample),
              "training": training_floor(arrays, args.batch, layers, args.n_sample, args.momentum, args.first_input)}
    if args.n_items:
        result["evaluation"] = evaluation_floor(arrays, layers, args.n_items, args.first_input)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
