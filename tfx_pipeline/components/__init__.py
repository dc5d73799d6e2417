"""Custom TFX components of the pipeline, each in its own importable module (so that a Kubeflow/Vertex container
can import the executor classes the compiled spec names):

* :mod:`.click_log_gen` -- ``ClickLogExampleGen``: raw click log -> ``Examples`` (one ``events`` split);
* :mod:`.session_tensors` -- ``SessionTensors``: events -> time-split session tensors + item vocabulary (Beam);
* :mod:`.session_evaluator` -- ``SessionEvaluator``: full-catalogue Recall@k/MRR@k and the model blessing.
"""
