"""Reading query results straight into numpy arrays with a binary ``COPY``.

The full recomputation reads millions of numeric rows; decoding them as asyncpg records
and Python objects would dominate its run time. A binary COPY of fixed-width, non-NULL
columns (``int4``, ``int8``, ``float8``, ``bool``) has the same size for every row, so numpy
reads it as a structured array without a per-row Python step.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from dukenet.errors import DukenetError
from dukenet.store.postgres import Connection, translate_errors

ColumnType = Literal["int4", "int8", "float8", "bool"]
_NUMPY = {"int4": (">i4", 4), "int8": (">i8", 8), "float8": (">f8", 8), "bool": ("?", 1)}
_HEADER = 19  # PGCOPY signature (11), flags (4), header extension length (4)


async def fetch_columns(
    conn: Connection, query: str, columns: list[tuple[str, ColumnType]], *args: object
) -> dict[str, npt.NDArray[Any]]:
    """Run ``query`` (columns of the given types, never NULL) and return one array per column."""
    buffer = io.BytesIO()
    with translate_errors():
        await conn.copy_from_query(
            query.rstrip().rstrip(";"), *args, output=buffer, format="binary"
        )
    data = buffer.getbuffer()
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in columns:
        fields.append((f"{name}__length", ">i4"))
        fields.append((name, _NUMPY[kind][0]))
    dtype = np.dtype(fields)
    body = data[_HEADER : len(data) - 2]  # the trailer is a field count of -1
    if len(body) % dtype.itemsize:
        raise DukenetError("binary COPY rows are not fixed-width (a NULL in a column?)")
    rows = np.frombuffer(body, dtype=dtype)
    for name, kind in columns:
        if rows.size and not np.all(rows[f"{name}__length"] == _NUMPY[kind][1]):
            raise DukenetError(f"column {name} holds NULLs or is not {kind}")
    return {name: rows[name].astype(_NUMPY[kind][0].replace(">", "=")) for name, kind in columns}
