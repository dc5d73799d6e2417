"""The GRU4Rec network (spec §2): GRU layers in the reference form, three input modes, item output vectors."""
import numpy as np
import tensorflow as tf
import tf_keras

from gru4rec_tf import params as params_lib


def block_uniform(rng: np.random.RandomState, rows: int, cols: int, n_blocks: int = 1) -> np.ndarray:
    """``[rows, n_blocks*cols]`` float32 matrix; each ``rows × cols`` block ~ U(±sqrt(6/(rows+cols))) (spec §2.4)."""
    sigma = np.sqrt(6.0 / (rows + cols))
    blocks = [rng.uniform(-sigma, sigma, size=(rows, cols)) for _ in range(n_blocks)]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _constant(value):
    return lambda shape, dtype=None: tf.constant(value, dtype=dtype)


class GRULayer(tf_keras.layers.Layer):
    """One GRU layer in the reference form of spec §2.1 (reset gate applied before the recurrent matmul).

    ``v = x·Wx + Bh`` with ``Wx = [W_cand | W_r | W_z]``; ``r = σ(v_r + h·U_r)``, ``z = σ(v_z + h·U_z)``;
    ``ĥ = act((r ⊙ h)·Wh + v_cand)``; ``h' = (1 − z) ⊙ h + z ⊙ ĥ``.

    Example:
      >>> layer = GRULayer(units=4, input_dim=3, rng=np.random.RandomState(0))
      >>> h = layer.recur(layer.project(tf.ones([2, 3])), tf.zeros([2, 4]))
    """

    def __init__(self, units: int, input_dim: int, rng: np.random.RandomState, hidden_act: str = "tanh",
                 **kwargs):
        super().__init__(**kwargs)
        if units < 1 or input_dim < 1:
            raise ValueError(f"units and input_dim must be >= 1, got {units}, {input_dim}")
        if hidden_act not in ("tanh", "relu"):
            raise ValueError(f"hidden_act must be 'tanh' or 'relu', got {hidden_act!r}")
        self.units, self.input_dim, self.hidden_act = units, input_dim, hidden_act
        self.wx = self.add_weight(name="Wx", shape=(input_dim, 3 * units),
                                  initializer=_constant(block_uniform(rng, input_dim, units, 3)))
        self.wrz = self.add_weight(name="Wrz", shape=(units, 2 * units),
                                   initializer=_constant(block_uniform(rng, units, units, 2)))
        self.wh = self.add_weight(name="Wh", shape=(units, units),
                                  initializer=_constant(block_uniform(rng, units, units, 1)))
        self.bh = self.add_weight(name="Bh", shape=(3 * units,), initializer="zeros")

    def project(self, x):
        """Input projection ``x·Wx + Bh`` (``[B, 3h]``)."""
        return tf.matmul(x, self.wx) + self.bh

    def project_rows(self, wx_rows):
        """Input projection of one-hot inputs given their gathered ``Wx`` rows (no-embedding mode)."""
        return wx_rows + self.bh

    def recur(self, v, h):
        """New hidden state from the input projection ``v`` and the previous state ``h``."""
        v_cand, v_r, v_z = tf.split(v, 3, axis=1)
        u_rz = tf.matmul(h, self.wrz)
        r = tf.sigmoid(v_r + u_rz[:, :self.units])
        z = tf.sigmoid(v_z + u_rz[:, self.units:])
        pre = tf.matmul(r * h, self.wh) + v_cand
        candidate = tf.tanh(pre) if self.hidden_act == "tanh" else tf.nn.relu(pre)
        return (1.0 - z) * h + z * candidate

    def call(self, x, h):
        return self.recur(self.project(x), h)


def inverted_dropout(x, rate: float, rng: tf.random.Generator):
    """Inverted dropout (scaled by 1/(1−p)) with randomness from ``rng``; identity when rate is 0."""
    if rate <= 0.0:
        return x
    keep = rng.uniform(tf.shape(x)) >= rate
    return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))


class GRU4Rec(tf_keras.Model):
    """GRU4Rec network: item input (one-hot, separate or shared embedding), stacked GRUs, item output vectors.

    The raw score of item ``v`` is ``h_L · W_y[v] + b_y[v]``. In shared ("constrained") mode the input of layer 0 is
    ``W_y[x]``; in separate mode ``E[x]``; with no embedding, layer 0's ``Wx`` rows act as a one-hot lookup.

    Calling the model scores the whole catalogue for one step of a batch of sessions (inference, no dropout):

    Example:
      >>> p = params_lib.GRU4RecParams.from_string("layers=8,n_sample=0")
      >>> model = GRU4Rec(n_items=50, params=p)
      >>> scores, states = model((tf.constant([3, 7]), model.initial_states(2)))
      >>> scores.shape
      TensorShape([2, 50])
    """

    def __init__(self, n_items: int, params: "params_lib.GRU4RecParams", seed: int = 42, **kwargs):
        super().__init__(**kwargs)
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items, self.hparams = int(n_items), params
        self.embedding_mode = params.embedding_mode
        layers = list(params.layers)
        rng = np.random.RandomState(seed)
        self.embedding = None
        if self.embedding_mode == "separate":
            self.embedding = self.add_weight(
                name="E", shape=(n_items, params.embedding),
                initializer=_constant(block_uniform(rng, n_items, params.embedding)))
        input_dims = {"shared": layers[-1], "separate": params.embedding, "none": n_items}
        dims_in = [input_dims[self.embedding_mode]] + layers[:-1]
        self.gru_layers = [GRULayer(units, d_in, rng, params.hidden_act, name=f"gru_{i}")
                           for i, (units, d_in) in enumerate(zip(layers, dims_in, strict=True))]
        self.item_vectors = self.add_weight(name="Wy", shape=(n_items, layers[-1]),
                                            initializer=_constant(block_uniform(rng, n_items, layers[-1])))
        self.item_bias = self.add_weight(name="By", shape=(n_items,), initializer="zeros")

    @property
    def input_table(self) -> tf.Variable:
        """The item-indexed variable whose rows are the layer-0 input: ``W_y``, ``E`` or layer 0's ``Wx``."""
        return {"shared": self.item_vectors, "separate": self.embedding,
                "none": self.gru_layers[0].wx if self.gru_layers else None}[self.embedding_mode]

    @property
    def item_tables(self) -> list:
        """The variables indexed by item (row ``i`` belongs to item ``i``): ``W_y``, the separate input table if
        any (``E`` or layer 0's ``Wx``), and ``B_y``; the rest are dense."""
        inputs = [] if self.embedding_mode == "shared" else [self.input_table]
        return [self.item_vectors] + inputs + [self.item_bias]

    def initial_states(self, batch_size):
        """Zero hidden states, one ``[batch_size, h_l]`` tensor per layer."""
        return tuple(tf.zeros([batch_size, layer.units]) for layer in self.gru_layers)

    def step_from_rows(self, input_rows, states, training: bool = False, rng: tf.random.Generator = None):
        """One GRU step from gathered input rows; returns ``(h_L, new_states)``.

        With ``training``, embedding and hidden dropout act as in spec §2.3 and the *dropped-out* vectors are the
        new states. In no-embedding mode ``dropout_p_hidden`` applies to layer 0 too (the reference behaviour).
        """
        p = self.hparams
        drop = (lambda x, rate: inverted_dropout(x, rate, rng)) if training else (lambda x, rate: x)
        new_states = []
        x = input_rows
        for i, layer in enumerate(self.gru_layers):
            if i == 0 and self.embedding_mode == "none":
                v = layer.project_rows(x)
            else:
                v = layer.project(drop(x, p.dropout_p_embed) if i == 0 else x)
            x = drop(layer.recur(v, states[i]), p.dropout_p_hidden)
            new_states.append(x)
        return x, tuple(new_states)

    def score_all(self, hidden):
        """Raw scores of every item, ``[B, n_items]``."""
        return tf.matmul(hidden, self.item_vectors, transpose_b=True) + self.item_bias

    def call(self, inputs, training=False):
        """``(item_idx [B], states)`` → ``(scores [B, n_items], new_states)``; inference form (no dropout)."""
        items, states = inputs
        hidden, new_states = self.step_from_rows(tf.gather(self.input_table, items), states)
        return self.score_all(hidden), new_states
