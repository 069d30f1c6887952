"""Rows of numbers from a CSV file that is not trusted, streamed with every size bounded.

The file is decoded as strict UTF-8 (a BOM is allowed) line by line: a line
longer than limits.max_line_chars, a NUL byte (a binary or UTF-16 file) or
bytes that are not UTF-8 raise DataFileError naming the file and the line.
Cells become float64 as they are read, 8 bytes each, and the total is checked
against limits.max_array_bytes row by row, so no large list of strings is
ever held. The label column alone may hold words (class names such as
"setosa"): its cells are kept as text until every row is read, and become
numbers if every one of them is a number.
"""
import array
import codecs
import csv
import io

import numpy as np

from fnn.data.file_limits import DataFileError, brief, over_limit

__all__ = ["read_csv"]

NOT_UTF8 = ("is not UTF-8 text ({why}); expected a UTF-8 CSV file of numbers (re-save it as "
            "'CSV UTF-8'; a binary file or a spreadsheet cannot be read)")


def _text(path, f):
    """The binary file `f` as strict UTF-8 text (a UTF-8 BOM is dropped; a UTF-16 one is refused)."""
    start = f.read(4)
    f.seek(0)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataFileError(path, NOT_UTF8.format(why="it starts with a UTF-16 byte-order mark"))
    return io.TextIOWrapper(f, encoding="utf-8-sig", errors="strict", newline="")


def _lines(path, text, limits):
    """The text's lines, each checked for length and NUL bytes."""
    number = 0
    while True:
        line = text.readline(limits.max_line_chars + 2)
        if not line:
            return
        number += 1
        if len(line.rstrip("\r\n")) > limits.max_line_chars:
            raise DataFileError(path, f"line {number} is longer than {limits.max_line_chars:,} "
                                      f"characters; expected one row of numbers per line; "
                                      f"{over_limit(limits, 'max_line_chars')}")
        if "\x00" in line:
            raise DataFileError(path, NOT_UTF8.format(why=f"line {number} holds a NUL byte, as a "
                                                          f"binary or UTF-16 file does"))
        yield line


def _rows(path, text, delimiter, limits):
    """(line number, stripped cells) of the non-blank, non-comment rows."""
    reader = csv.reader(_lines(path, text, limits), delimiter=delimiter, strict=False)
    try:
        for row in reader:
            if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#"):
                yield reader.line_num, [c.strip() for c in row]
    except UnicodeDecodeError as e:
        bad = e.object[e.start:e.start + 1].hex() if isinstance(e.object, bytes) else "?"
        raise DataFileError(path, NOT_UTF8.format(why=f"byte 0x{bad} near line {reader.line_num + 1} "
                                                      f"is not valid UTF-8")) from None
    except csv.Error as e:
        raise DataFileError(path, f"line {reader.line_num}: {brief(e)}; expected numbers separated "
                                  f"by {delimiter!r}") from None


def _is_number(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def read_csv(path, f, label_column, header, delimiter, limits):
    """(x (n, d), y (n,), line numbers) from the CSV file open as `f` (binary).

    label_column None: every column is a feature, and y is None (inputs to predict on).
    """
    with _text(path, f) as text:
        rows = _rows(path, text, delimiter, limits)
        first = next(rows, None)
        what = "features" if label_column is None else "features and a label"
        if first is None:
            raise DataFileError(path, f"the file is empty: expected rows of numbers, {what}")
        if header is None:
            header = not any(_is_number(c) for c in first[1])
        names = first[1] if header else None
        width = len(names) if names else len(first[1])
        least = 1 if label_column is None else 2
        if width < least:
            raise DataFileError(path, f"rows have {width} column; expected at least {least} ({what})")
        column = None if label_column is None else _label_index(path, label_column, names, width)
        values, labels, lines = _values(path, rows if header else _chain(first, rows), names, width,
                                        limits, column)
    if not lines:
        raise DataFileError(path, "the file has a header but no data rows")
    values = np.frombuffer(values, np.float64).reshape(len(lines), width)     # (n, width)
    if column is None:
        return values, None, lines.tolist()
    return np.delete(values, column, axis=1), _label_values(labels, values[:, column]), lines.tolist()


def _label_values(labels, numbers):
    """The label column: float64 numbers where every cell is one, else the cells' text (a list of str)."""
    return numbers if labels is None else labels


def _chain(first, rows):
    yield first
    yield from rows


def _values(path, rows, names, width, limits, label_column=None):
    """Every row's cells as float64 in one flat array('d'), the label cells' text if any of them is not
    a number (else None; a word's cell is 0 in the values), and the line numbers (array('q'))."""
    values, lines, labels = array.array("d"), array.array("q"), None
    max_cells = limits.max_array_bytes // 8
    for line, cells in rows:
        if len(cells) != width:
            raise DataFileError(path, f"line {line} has {len(cells)} columns, expected {width} "
                                      f"(ragged rows)")
        if len(values) + width > max_cells:
            raise DataFileError(path, f"at line {line}, the values read so far pass "
                                      f"{limits.max_array_bytes:,} bytes as float64; "
                                      f"{over_limit(limits, 'max_array_bytes')}")
        for c, cell in enumerate(cells):
            try:
                values.append(float(cell))
            except ValueError:
                if c != label_column:
                    column = f"column {c + 1}" + (f" ({brief(repr(names[c]), 40)})" if names else "")
                    raise DataFileError(path, f"line {line}, {column}: {brief(repr(cell), 40)} is not a "
                                              "number") from None
                if labels is None:                     # the first word: every earlier label as text
                    labels = list(_earlier_labels(values, width, label_column))
                values.append(0.0)
        if labels is not None:
            labels.append(cells[label_column].strip())
        lines.append(line)
    return values, labels, lines


def _earlier_labels(values, width, label_column):
    """The label cells of the rows already read, all numbers, as text (1.0 → '1')."""
    for i in range(len(values) // width):
        v = values[i * width + label_column]
        yield str(int(v)) if v == int(v) else repr(v)


def _label_index(path, label_column, names, width):
    """The label's column index in [0, width), from an index (negative counts from the end) or a name."""
    if isinstance(label_column, str):
        if not names or label_column not in names:
            raise DataFileError(path, f"no column named {label_column!r}; columns: {brief(names)}")
        label_column = names.index(label_column)
    if not -width <= label_column < width:
        raise DataFileError(path, f"label_column {label_column} is out of range for {width} columns")
    return label_column % width
