"""File previews from verified bytes: first rows of tables, text heads, images. Pure.

The bytes come from the store's verified read path (see `app`); this module
only turns them into escaped HTML. Images are shown through their own URL, as
the download route serves them, so only the kinds a browser draws without
running code (PNG, JPEG, GIF, WebP; never SVG) are inlined.
"""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any, Literal

import pandas as pd

from .html import esc

__all__ = ["IMAGE_TYPES", "MAX_PREVIEW_BYTES", "kind", "render"]

Kind = Literal["csv", "parquet", "image", "text"]
MAX_PREVIEW_BYTES = 32 * 2**20  # a preview verifies the whole file: keep it small
ROWS = 20
COLUMNS = 50
CSV_BYTES = 2 * 2**20  # the rows shown come from this much: 20 rows of long lines fit
CSV_SHORT_BYTES = 64 * 2**10  # ... or, where a field is over the csv module's limit, this
TEXT_BYTES = 4096
CELL_CHARS = 200  # a cell shows this much of its text
# A Parquet preview decodes at most this much (the columns' uncompressed size):
# a kilobyte of zstd can hold rows of 20 MiB strings.
PARQUET_DECODED_BYTES = 64 * 2**20
PARQUET_PAGES = 50_000  # ... summed from this many pages' headers at most
PARQUET_HEADER_VALUES = 40 * PARQUET_PAGES  # ... of this many Thrift values in all
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# Read as dictionaries and cut (the views since pyarrow 16).
_DICTIONARY_TYPES = (
    "is_string",
    "is_large_string",
    "is_string_view",
    "is_binary",
    "is_large_binary",
    "is_binary_view",
)
# Encodings pyarrow cannot read as a dictionary ("Not yet implemented").
_DELTA = {"DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"}
_TEXT = {".txt", ".md", ".json", ".jsonl", ".yaml", ".yml", ".log", ".py", ".toml", ".ini", ".xml"}


def _suffix(relpath: str) -> str:
    name = relpath.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def kind(relpath: str) -> Kind | None:
    """What preview a file gets from its name; ``None``: a download link only."""
    suffix = _suffix(relpath)
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in IMAGE_TYPES:
        return "image"
    if suffix in _TEXT:
        return "text"
    return None


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + " …"


def _table(frame: pd.DataFrame, *, more_rows: bool = False, more_columns: bool = False) -> str:
    head = "".join(f"<th>{esc(_cell(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    note = "<p class=muted>Only part of the file is shown.</p>" if more_rows or more_columns else ""
    return f"<table class=preview><tr>{head}</tr>{rows}</table>{note}"


def _csv(data: bytes, sep: str) -> str:
    try:
        return _csv_head(data, sep, CSV_BYTES)
    except csv.Error:  # a field above the csv module's limit: fewer, whole lines
        return _csv_head(data, sep, CSV_SHORT_BYTES)


def _csv_head(data: bytes, sep: str, budget: int) -> str:
    """The first rows and columns from the first 2 MiB: a header of 300,000
    columns kept pandas busy for 20 s. Only the rows and columns shown go
    through pandas, so they read as the whole file would (types, empty cells)."""
    head, cut, long_header = data[:budget], len(data) > budget, False
    if cut:  # whole lines only
        end = head.rfind(b"\n")
        if end == -1:  # a first line longer than that: its whole fields
            end, long_header = head.rfind(sep.encode()), True
        if end <= 0:
            return "<p class=muted>No preview: the first field is too long.</p>"
        head = head[:end]
    text = head.decode("utf-8-sig", errors="replace")
    lines = (r for r in csv.reader(io.StringIO(text), delimiter=sep) if r)
    rows = list(itertools.islice(lines, ROWS + 2))  # the header, the rows, one more
    shown = io.StringIO()
    csv.writer(shown).writerows(r[:COLUMNS] for r in rows[: ROWS + 1])
    frame = pd.read_csv(io.StringIO(shown.getvalue()))
    return _table(
        frame,
        more_rows=cut or len(rows) > ROWS + 1,
        more_columns=long_header or any(len(r) > COLUMNS for r in rows),
    )


def _parquet(data: bytes) -> str:
    """The first rows and columns, decoded alone: a small file of repeated values
    can hold billions of rows, and reading it whole would need their memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(io.BytesIO(data))
    schema = source.schema_arrow
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    names = [n for n in schema.names if n not in index]  # pandas' index: as read_parquet
    # The row groups the first rows are read from: as many as hold them.
    groups: list[int] = []
    delta: set[str] = set()  # columns of prefix-coded chunks, read as plain values
    held = 0
    while held < ROWS and len(groups) < source.metadata.num_row_groups:
        held += source.metadata.row_group(len(groups)).num_rows
        groups.append(len(groups))
    if groups:
        # (A RangeIndex is described by a dict, stored as no column.)
        shown = set(names[:COLUMNS]) | {i for i in index if isinstance(i, str)}
        firsts = {name.split(".", 1)[0] for name in shown}  # a quick no for most columns
        # Summed from the pages' own headers, which say what the reader allocates:
        # the footer's totals are the writer's word, never checked against them.
        # They are read in Python: so many only (a MiB or a thousand values a page).
        decoded = pages = 0
        thrift = _Thrift(data)
        for group in map(source.metadata.row_group, groups):
            for column in map(group.column, range(group.num_columns)):
                path = column.path_in_schema
                if path.split(".", 1)[0] in firsts and _under(path, shown):
                    size, count, largest = _pages_decoded(thrift, column, PARQUET_PAGES + 1 - pages)
                    if _DELTA & set(column.encodings):  # read as plain values
                        delta.add(path)
                    if "DELTA_BYTE_ARRAY" in column.encodings:
                        # A value is a prefix of the one before and its own
                        # suffix: each row can be as long as the page holding it.
                        size += ROWS * largest
                    decoded, pages = decoded + size, pages + count
                if pages > PARQUET_PAGES:
                    return (
                        "<p class=muted>No preview: the first rows of this Parquet file lie "
                        f"in more than {PARQUET_PAGES:,} pages, more than a preview reads.</p>"
                    )
        # A fixed-size value a dictionary holds once is made once a row.
        decoded += sum(
            ROWS * f.type.byte_width
            for f in schema
            if f.name in shown and pa.types.is_fixed_size_binary(f.type)
        )
        if decoded > PARQUET_DECODED_BYTES:
            return (
                "<p class=muted>No preview: the first rows of this Parquet file take "
                f"{decoded:,} bytes decoded, more than a preview reads.</p>"
            )
    # Text and bytes are read as dictionaries (each distinct value once) and cut
    # to what a cell shows before pandas sees them: 20 rows of one 20 MiB string
    # stay small, where decoding made each row its own copy.
    texts = [
        f.name
        for f in schema
        if f.name in names[:COLUMNS]
        and f.name not in delta
        and any(getattr(pa.types, check, lambda _: False)(f.type) for check in _DICTIONARY_TYPES)
    ]
    source = pq.ParquetFile(io.BytesIO(data), read_dictionary=texts)
    batches: list[pa.RecordBatch] = []
    for batch in source.iter_batches(
        batch_size=ROWS, row_groups=groups, columns=names[:COLUMNS], use_pandas_metadata=True
    ):
        batches.append(batch)
        if sum(b.num_rows for b in batches) >= ROWS:
            break
    table = pa.Table.from_batches(batches) if batches else source.schema_arrow.empty_table()
    cut = [_cut_text(c) for c in table.columns]
    fields = [f.with_type(c.type) for f, c in zip(table.schema, cut, strict=True)]
    table = pa.Table.from_arrays(cut, schema=pa.schema(fields, metadata=table.schema.metadata))
    frame = table.to_pandas().iloc[:ROWS, :COLUMNS]
    return _table(
        frame,
        more_rows=source.metadata.num_rows > len(frame),
        more_columns=len(names) > COLUMNS,
    )


def _pages_decoded(thrift: _Thrift, column: Any, most: int) -> tuple[int, int, int]:
    """What the pages of a column chunk decode to, as their headers say, how
    many pages it has (up to ``most``) and the largest page: the reader reads
    the pages in the bytes the chunk's offsets and compressed size span, and
    decompresses each into a buffer of the size its header gives; a chunk of no
    values (a group of no rows) it never reads."""
    if column.num_values <= 0:
        return 0, 0, 0
    start = column.data_page_offset
    if column.has_dictionary_page and 0 < (column.dictionary_page_offset or 0) < start:
        start = column.dictionary_page_offset  # as the reader starts the chunk
    end = min(start + column.total_compressed_size, len(thrift.data))
    total = pages = largest = 0
    while 0 <= start < end and pages < most:
        fields: dict[int, int] = {}
        start = thrift.struct(start, fields)
        size = max(fields.get(2, 0), 0)  # uncompressed_page_size
        total, largest = total + size, max(largest, size)
        start += max(fields.get(3, 0), 0)  # compressed_page_size: the page's body
        pages += 1
    return total, pages, largest


class _Thrift:
    """Skips Thrift compact values in ``data``: a page header holds a few dozen
    (its sizes, encodings, statistics), so a preview reads so many only, and a
    varint of more bytes than 64 bits take is refused: a malformed file of a
    long varint or a list of millions of elements kept a UI thread busy for
    minutes (the varint's number grew a bit at each byte, its cost squared)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.left = PARQUET_HEADER_VALUES

    def varint(self, pos: int, signed: bool = False) -> tuple[int, int]:
        """A varint at ``pos`` (zigzag when ``signed``), and where it ends."""
        value = shift = 0
        while True:
            byte = self.data[pos]  # an IndexError past the end: a malformed file
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if not byte & 0x80:
                return ((value >> 1) ^ -(value & 1) if signed else value), pos
            if shift >= 70:
                raise ValueError("a Parquet page header holds a varint longer than 10 bytes")

    def struct(self, pos: int, top: dict[int, int] | None = None) -> int:
        """Skip a struct at ``pos``, its integer fields kept in ``top``; where it ends."""
        field = 0
        while (head := self.data[pos]) != 0:
            self._count()
            pos += 1
            if head >> 4:  # the field id as a delta, or in full after the head
                field += head >> 4
            else:
                field, pos = self.varint(pos, signed=True)
            if top is not None and head & 0x0F in (4, 5, 6):  # i16, i32, i64
                top[field], pos = self.varint(pos, signed=True)
            elif head & 0x0F not in (1, 2):  # a field's true or false is in its head
                pos = self.value(pos, head & 0x0F)
        return pos + 1

    def value(self, pos: int, kind: int) -> int:
        """Skip one value of type ``kind`` at ``pos``; where it ends."""
        self._count()
        data = self.data
        if kind in (1, 2, 3):  # a bool (in a list or map) or a byte
            end = pos + 1
        elif kind in (4, 5, 6):
            end = self.varint(pos)[1]
        elif kind == 7:
            end = pos + 8
        elif kind == 8:
            size, pos = self.varint(pos)
            end = pos + size
        elif kind in (9, 10):  # list, set: the size and the elements' type, then those
            head, end = data[pos], pos + 1
            size = head >> 4
            if size == 15:
                size, end = self.varint(end)
            for _ in range(size):
                end = self.value(end, head & 0x0F)
        elif kind == 11:  # map: the size, then the keys' and values' types, then pairs
            size, end = self.varint(pos)
            if size:
                types, end = data[end], end + 1
                for _ in range(size):
                    end = self.value(end, types >> 4)
                    end = self.value(end, types & 0x0F)
        elif kind == 12:
            end = self.struct(pos)
        else:
            raise ValueError(f"a Parquet page header holds an unknown Thrift type {kind}")
        if end > len(data):
            raise ValueError("a Parquet page header runs past the end of the file")
        return end

    def _count(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ValueError(
                f"the Parquet page headers hold more than {PARQUET_HEADER_VALUES:,} values, "
                "more than a preview reads"
            )


def _under(path: str, names: set[str]) -> bool:
    """Whether a Parquet leaf column (its dotted path) belongs to one of the
    top-level columns ``names``: ``a.b`` to ``a`` (a struct's field) or to ``a.b``
    (a column named with a dot). Both, when both exist: counted, never missed."""
    return any(
        path.startswith(name) and path[len(name) : len(name) + 1] in ("", ".") for name in names
    )


def _cut_text(column: Any) -> Any:
    """A column with its dictionaries' text or bytes cut to a cell's length (in
    Arrow), then as plain values again, as pandas showed them before: cut, two
    values can become one (long texts alike in their first 200 characters), and
    a dictionary of the two made pandas refuse the column (categories not unique)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        return column
    value = column.type.value_type
    if pa.types.is_binary(value) or pa.types.is_large_binary(value):
        cut = pc.binary_slice
    elif pa.types.is_string(value) or pa.types.is_large_string(value):
        cut = pc.utf8_slice_codeunits
    else:  # a pandas categorical of numbers or times: no text to cut
        return column
    return pa.chunked_array(
        [cut(chunk.dictionary, 0, CELL_CHARS + 1).take(chunk.indices) for chunk in column.chunks],
        value,
    )


def render(relpath: str, data: bytes) -> str:
    """HTML for the first rows or lines of a CSV, Parquet or text file.

    Unreadable content gives a short note, never an exception.
    """
    what = kind(relpath)
    try:
        if what == "csv":
            return _csv(data, "\t" if _suffix(relpath) == ".tsv" else ",")
        if what == "parquet":
            return _parquet(data)
    except ImportError:
        return "<p class=muted>Parquet previews need pyarrow (pip install pyarrow).</p>"
    except Exception as err:  # a malformed file is the file's problem, not the page's
        return f"<p class=muted>No preview: {esc(type(err).__name__)}: {esc(str(err)[:200])}</p>"
    head = data[:TEXT_BYTES].decode("utf-8", errors="replace")
    more = " …" if len(data) > TEXT_BYTES else ""
    return f"<pre>{esc(head)}{more}</pre>"
