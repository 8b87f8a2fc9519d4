"""Connectors: turn files (and, later, OPC UA servers) into catalog ingest plans."""

from ._registry import create_reader, list_formats, register_format

__all__ = ["create_reader", "list_formats", "register_format"]
