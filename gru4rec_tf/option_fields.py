"""How an options class declares a field: default, help text and choices in the field's metadata, from which
:mod:`gru4rec_tf.commands.option_flags` derives the command-line flags. No TensorFlow.

Example::

    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Options:
    ...     mode: str = option_field("fast", help="How to run.", choices=("fast", "exact"))
    >>> dataclasses.fields(Options)[0].metadata["choices"]
    ('fast', 'exact')
    >>> positive_int("k", 0)
    Traceback (most recent call last):
    ValueError: k must be an integer >= 1, got 0
"""
import dataclasses


# pylint: disable-next=redefined-builtin
def option_field(default=dataclasses.MISSING, *, help: str, choices: tuple[str, ...] = ()):
    """A dataclass field with its description (``metadata["help"]``, also the flag's help) and its allowed values."""
    metadata = {"help": help, "choices": choices} if choices else {"help": help}
    return dataclasses.field(default=default, metadata=metadata)


def positive_int(name: str, value) -> int:
    """``value`` when it is an integer >= 1 (not a bool), else a ValueError naming the option ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value
