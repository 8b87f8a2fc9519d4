"""Encoders by name: one modality's input (series ``[B, C, L]``, images ``[B, C, H, W]``, ...) →
features ``[B, out_dim]``."""

from ._base import (Encoder, create_encoder, encoder_input, encoder_modality, encoder_name, known_encoder,
                    list_encoders, register_encoder)

__all__ = ["Encoder", "create_encoder", "encoder_input", "encoder_modality", "encoder_name", "known_encoder",
           "list_encoders", "register_encoder"]
