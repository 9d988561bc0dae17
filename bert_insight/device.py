"""Device resolution shared by every verb."""

from __future__ import annotations

import torch

from .errors import BertInsightInputError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA when available, else CPU), a name or a torch.device into a torch.device."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise BertInsightInputError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu' or 'cuda[:N]'."
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BertInsightInputError(
            f"device={device!r} asks for CUDA but torch sees no GPU here; use device='auto' or 'cpu'."
        )
    return resolved
