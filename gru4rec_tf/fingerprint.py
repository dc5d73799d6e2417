"""Fingerprints: a short hash that says whether two sets of arrays (weights, data, a vocabulary) are the same.

Example::

    >>> import numpy as np
    >>> from gru4rec_tf.fingerprint import fingerprint
    >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3)), fingerprint(np.arange(3)) == fingerprint(np.ones(3))
    (True, False)
"""
import hashlib

import numpy as np


def fingerprint(*arrays) -> str:
    """A short SHA-256 of the arrays' bytes (order and dtype matter)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        if array.dtype == object:
            array = np.asarray(array.astype(str), dtype=np.str_)
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
