"""Device resolution and hardware facts shared by every verb."""

from __future__ import annotations

from pathlib import Path

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


def bf16_is_fast(device: torch.device | str) -> bool:
    """True where bfloat16 matmuls are native: CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX.

    Elsewhere (e.g. AVX2-only CPUs) torch emulates bf16 matmuls, which is many times slower than fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: no cheap way to ask, and a wrong yes costs a lot
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _glibc_malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def release_freed_memory() -> None:
    """Hand memory freed since the last call back to the operating system (glibc's ``malloc_trim``).

    Streaming loops free one batch's large buffers before the next; glibc keeps such freed chunks in a
    fragmented heap, so without this the resident size creeps up with the number of batches although the
    data held stays constant. A no-op where the C library is not glibc.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
