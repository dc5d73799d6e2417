"""The canonical columns of an event log and the error raised for bad input data.

Every reader returns the columns ``SessionId``, ``ItemId`` and ``Time`` whatever the source file calls them; the
option classes and command-line flags take their column-name defaults from here.
"""
DEFAULT_SESSION_KEY, DEFAULT_ITEM_KEY, DEFAULT_TIME_KEY = "SessionId", "ItemId", "Time"
CANONICAL_COLUMNS = (DEFAULT_SESSION_KEY, DEFAULT_ITEM_KEY, DEFAULT_TIME_KEY)


class DataError(ValueError):
    """Bad input data; the message names the file and the problem.

    Example::

        >>> from gru4rec_tf.data import event_log
        >>> try:
        ...     event_log.load_events("/nonexistent/train.tsv")
        ... except DataError as err:
        ...     print(err)
        /nonexistent/train.tsv: file does not exist
    """
