"""Input checks shared by layers: refuse dtypes that would give quietly wrong results."""
from __future__ import annotations

#: dtype kinds no layer computes with: complex, object, text, bytes, void, datetime, timedelta
_REFUSED_KINDS = {"c": "complex", "O": "Python objects", "U": "text", "S": "bytes", "V": "raw records",
                  "M": "datetimes", "m": "timedeltas"}


def check_numeric(layer, x) -> None:
    """Raise TypeError naming ``layer`` when ``x`` is not a real numeric array (complex parts would be
    dropped or kept silently, object arrays compute slowly in Python and wrongly for mixed types)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        raise TypeError(f"{type(layer).__name__}: expected an array, got {type(x).__name__}")
    kind = _REFUSED_KINDS.get(dtype.kind)
    if kind is not None:
        raise TypeError(f"{type(layer).__name__}: input dtype {dtype} ({kind}) is not supported; pass real numbers "
                        "(float32, or float64 for gradient checks)")
