"""gru4rec-tf: GRU4Rec with top-k gain losses in TensorFlow/Keras, with TFX, Beam and TF Serving support."""
import setuptools

setuptools.setup(
    name="gru4rec-tf",
    version="0.1.0",
    description="GRU4Rec (session-based recommendation, top-k gain losses) in TensorFlow/Keras",
    packages=setuptools.find_packages(include=["gru4rec_tf*", "tfx_pipeline*", "serving*"]),
    python_requires=">=3.10",
    # tfx, ml-pipelines-sdk, ml-metadata and tensorflow-data-validation are deliberately absent: on glibc < 2.38
    # pip would try ml-metadata 1.21 wheels that cannot load. scripts/install.sh installs them.
    install_requires=[
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "tensorflow-recommenders==0.7.7",
        "tensorflow-serving-api==2.19.1",
        "apache-beam==2.77.0",
        "absl-py>=1.4,<2",
        "numpy>=1.26,<3",
        "pandas>=2,<3",
        "pyarrow>=10,<19",
    ],
    entry_points={
        "console_scripts": ["gru4rec=gru4rec_tf.__main__:run"],
        # Subcommands contributed by the packages built on the library (see gru4rec_tf/__main__.py).
        "gru4rec.commands": [
            "pipeline = tfx_pipeline.cli",
            "serve = serving.dev_server_cli",
            "predict = serving.client_cli",
            "sessions = serving.sessions.cli",
        ],
    },
)
