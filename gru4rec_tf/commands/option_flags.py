"""absl flags derived from an options dataclass: one flag per field, with the field's default and help text.

The options class stays the one definition of each option: its field type gives the flag kind, its default the
flag default, ``metadata["help"]`` the help text and ``metadata["choices"]`` (when set) an enum flag. Commands read
the values back with :func:`option_values` and build the options class from them.

Example::

    >>> from gru4rec_tf.preprocessing.options import PreprocessOptions
    >>> values = flags.FlagValues()
    >>> define_option_flags(PreprocessOptions, values)
    >>> values(["gru4rec preprocess", "--input=x.csv", "--output=out", "--event_type_filter=view,buy"])
    ['gru4rec preprocess']
    >>> option_values(PreprocessOptions, values)["event_type_filter"]
    ('view', 'buy')
"""
import contextlib
import dataclasses
import types
import typing
from typing import Any

from absl import flags

_KINDS = {bool: "boolean", int: "integer", float: "float", str: "string"}


def flag_kind(field_type) -> str:
    """The absl flag kind of a field type: ``boolean``, ``integer``, ``float``, ``string`` or ``list`` (tuples).

    ``X | None`` (``Optional[X]``) is the kind of ``X`` (the flag's default is then None).
    """
    if typing.get_origin(field_type) in (typing.Union, types.UnionType):
        field_type = next(arg for arg in typing.get_args(field_type) if arg is not type(None))
    if typing.get_origin(field_type) in (tuple, list):
        return "list"
    return _KINDS[field_type]


def flag_default(field: dataclasses.Field) -> Any:
    """The flag default of a field: its default (a list for a tuple), None for a field without default."""
    if field.default is dataclasses.MISSING:
        return None
    return list(field.default) if isinstance(field.default, tuple) else field.default


def _fields(options_cls, names) -> list:
    """The dataclass fields of ``options_cls`` named in ``names`` (all of them when None), in the class's order."""
    fields = dataclasses.fields(options_cls)
    if names is None:
        return list(fields)
    unknown = sorted(set(names) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"{options_cls.__name__} has no field(s) {unknown}")
    return [f for f in fields if f.name in names]


def define_option_flags(options_cls, flag_values: flags.FlagValues = flags.FLAGS, fields=None) -> None:
    """Defines one flag per field of the dataclass ``options_cls`` (or per field named in ``fields``); flags already
    defined are kept."""
    hints = typing.get_type_hints(options_cls)
    for field in _fields(options_cls, fields):
        if field.name in flag_values:
            continue
        default, help_text = flag_default(field), field.metadata.get("help", "")
        choices = field.metadata.get("choices")
        if choices:
            flags.DEFINE_enum(field.name, default, list(choices), help_text, flag_values=flag_values)
        else:
            define = getattr(flags, f"DEFINE_{flag_kind(hints[field.name])}")
            define(field.name, default, help_text, flag_values=flag_values)


@contextlib.contextmanager
def flag_wording(flag_values: flags.FlagValues = flags.FLAGS):
    """Re-raises an options class's ValueError that starts with a field name as one about the flag of that name.

    Example::

        >>> from gru4rec_tf.preprocessing.options import PreprocessOptions
        >>> values = flags.FlagValues()
        >>> define_option_flags(PreprocessOptions, values)
        >>> with flag_wording(values):
        ...     PreprocessOptions(input="x.csv", output="out", min_item_support=0)
        Traceback (most recent call last):
        ValueError: --min_item_support must be an integer >= 1, got 0
    """
    try:
        yield
    except ValueError as err:
        name = str(err).split(" ", 1)[0]
        if name in flag_values:
            raise ValueError(f"--{err}") from None
        raise


def option_values(options_cls, flag_values: flags.FlagValues = flags.FLAGS, fields=None) -> dict[str, Any]:
    """Field name -> flag value for every field of ``options_cls`` (or every one named in ``fields``), as the class
    takes it (lists as tuples)."""
    hints = typing.get_type_hints(options_cls)
    values = {}
    for field in _fields(options_cls, fields):
        value = flag_values[field.name].value
        values[field.name] = tuple(value or ()) if flag_kind(hints[field.name]) == "list" else value
    return values
