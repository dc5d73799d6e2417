"""gru4rec_tf: GRU4Rec with top-k gain losses (Hidasi & Karatzoglou, CIKM 2018) in TensorFlow / Keras 2.

The project standardises on Keras 2 through ``tf_keras`` (tensorflow-recommenders, tensorflow-transform and TFX
expect it). ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first imported, so importing this package
sets it (unless the caller chose a value already).

Submodules are imported lazily; this package itself imports neither TensorFlow, TFX, Beam nor gRPC.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
