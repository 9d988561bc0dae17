"""The one exception type users see for bad input."""

from __future__ import annotations


class BertInsightInputError(ValueError):
    """Bad input to a bert_insight function.

    The message says what was wrong and what to do about it. It subclasses ValueError so
    ``except ValueError`` in user code keeps working.
    """
