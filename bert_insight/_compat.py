"""Old spellings of public parameters keep working for one release, with a DeprecationWarning.

``renamed(k="top_k")`` maps a renamed keyword; ``keywords_only("tokens", "examples")`` accepts frames
that used to be positional and are now keyword-only (docs/CONTRACTS.md, "Parameter conventions").
"""

from __future__ import annotations

import functools
import inspect
import warnings


def renamed(**old_to_new: str):
    """Accept ``old=value`` for a parameter now called ``new`` (DeprecationWarning)."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__name__}() got both {old}= and {new}=; pass {new}= only")
                    warnings.warn(f"{function.__name__}({old}=...) is deprecated; pass {new}=... "
                                  "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def keywords_only(*names: str):
    """Accept the keyword-only parameters ``names`` positionally, in that order (DeprecationWarning)."""

    def decorate(function):
        positional = sum(1 for parameter in inspect.signature(function).parameters.values()
                         if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD))

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(names):
                    raise TypeError(f"{function.__name__}() takes {positional} positional arguments; pass "
                                    f"{', '.join(names)} by keyword")
                moved = names[: len(extra)]
                warnings.warn(f"passing {', '.join(moved)} to {function.__name__}() by position is deprecated; "
                              f"pass {', '.join(f'{name}=' for name in moved)} (keyword-only from the next "
                              "release)", DeprecationWarning, stacklevel=2)
                for name, value in zip(moved, extra):
                    if name in kwargs:
                        raise TypeError(f"{function.__name__}() got {name} twice")
                    kwargs[name] = value
                args = args[:positional]
            return function(*args, **kwargs)

        return wrapper

    return decorate
