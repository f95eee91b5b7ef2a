"""numpy and pandas scalars as plain Python values. Pure.

Values such as ``df["seed"].max()`` (``np.int64``), ``np.float32(0.5)``,
``np.bool_(True)``, ``pd.Timestamp(..., tz="UTC")`` or a 0-d array are everyday
data-science values; labels and query filters accept them and store or send their
plain Python value (``int``, ``float``, ``bool``, ``str``, ``datetime``). Neither
numpy nor pandas is imported here: a value can only be one of theirs if its
library is loaded already.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["plain", "plain_tree"]


def plain(value: Any) -> Any:
    """The plain Python value of a numpy or pandas scalar; anything else unchanged.

    ``np.bool_`` -> ``bool``, ``np.integer`` -> ``int``, ``np.floating`` ->
    ``float``, ``np.str_`` -> ``str``, a 0-d array -> its element (converted the
    same way), ``pd.Timestamp`` -> ``datetime`` (with its timezone, if any).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biufU":
            value = value[()]  # the array's numpy scalar
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        if isinstance(value, np.str_):
            return str(value)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.Timestamp):
        # Nanoseconds are dropped: the catalogs keep milliseconds anyway.
        result: dt.datetime = value.to_pydatetime(warn=False)
        return result
    return value


_PLAIN = frozenset({str, int, float, bool, type(None), dt.datetime})


def plain_tree(value: Any) -> Any:
    """`plain` applied to every value and key inside dicts, lists and tuples.

    Containers keep their kind (a ``Mapping`` becomes a ``dict``); a container
    without any numpy or pandas value is returned as it is.
    """
    if isinstance(value, Mapping):
        items = [(plain_tree(k), plain_tree(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        if all(type(item) in _PLAIN for item in value):
            return value  # plain already (a long $in list of ids)
        converted = [plain_tree(item) for item in value]
        if all(a is b for a, b in zip(converted, value, strict=True)):
            return value
        return converted if isinstance(value, list) else tuple(converted)
    return plain(value)
