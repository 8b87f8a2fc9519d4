"""Errors that name what was wrong and where (file, row, field, key, node)."""

from __future__ import annotations


class TransferlineError(Exception):
    """Base class for errors reported to the user without a traceback."""


class DataError(TransferlineError):
    """Bad input: names the file and, where known, the row, field, key or node.

    Rows are 1-based line numbers in the source file when the source is text.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
        key: str | None = None,
        node: str | None = None,
    ) -> None:
        self.message, self.file, self.row, self.field, self.key, self.node = message, file, row, field, key, node
        where = [f"{name} {value!r}" if name != "row" else f"row {value}"
                 for name, value in (("file", file), ("row", row), ("field", field), ("key", key), ("node", node))
                 if value is not None]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class CatalogError(TransferlineError):
    """A catalog operation that cannot be done (unknown dataset, kind mismatch, changed source)."""


def shorten(value, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a 50 MB CSV field is never echoed whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-8:]} ({len(text):,} chars)"
