"""Encoders by name: windows ``[B, C, L]`` → features ``[B, out_dim]``."""

from ._base import Encoder, create_encoder, list_encoders, register_encoder

__all__ = ["Encoder", "create_encoder", "list_encoders", "register_encoder"]
