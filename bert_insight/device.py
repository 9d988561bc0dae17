"""Device resolution and hardware facts shared by every verb."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


@functools.cache  # read once per process: every linear-kernel choice key names the CPU
def cpu_description() -> str:
    """The CPU model as the OS names it, with its family and model numbers where /proc/cpuinfo has them
    (e.g. "AMD EPYC (family 25, model 17)"), else platform.processor() or "unknown CPU"."""
    import platform

    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        if "model name" in fields:
            family, model = fields.get("cpu family"), fields.get("model")
            suffix = f" (family {family}, model {model})" if family and model else ""
            return fields["model name"] + suffix
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _glibc_function(name: str):
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune or trim
        return None


_MALLOC_TRIM = _glibc_function("malloc_trim")
_MALLOPT = _glibc_function("mallopt")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's ceiling for its dynamic mmap threshold on 64-bit systems (4 MiB * sizeof(long)); inside
#: :func:`reused_heap` buffers up to this size come from the heap, larger ones from fresh mmap pages.
MMAP_THRESHOLD = 32 * 2**20
#: How many :func:`reused_heap` blocks are open (the heap is one per process, so the count is too).
_heap_depth = 0


@contextmanager
def reused_heap() -> Iterator[None]:
    """Inside, glibc keeps freed memory for the next allocation instead of returning it to the system.

    Autograd frees and reallocates the same large activation buffers on every forward and backward; by
    default glibc serves many of them with fresh ``mmap`` pages (zero-filled by the kernel on first touch)
    and trims the heap top as soon as 2x the mmap threshold is free, so each pass pays page faults again
    (layer IG without it: 1.2x the time in fp32 on AMD Zen 4, in bf16 within that machine's noise). Inside: buffers up to 32 MiB come from the heap and the
    heap top is not trimmed. On exit the freed memory goes back (``malloc_trim``) and the thresholds are
    left at 32 MiB / 64 MiB, where glibc's dynamic thresholds end up in torch workloads anyway (setting
    them turns the dynamic adjustment off for the process). A no-op where the C library is not glibc.

    Nested uses share the outermost one: only its exit trims, so a loop of calls inside one
    ``with reused_heap():`` (layer_ig over many windows, or a caller's loop over layer_ig calls) touches
    its buffers' pages once. Trimming after every call made each call page-fault its working set in
    again: MiniLM bf16, one example per call (AMD Zen 4, family 25 model 17), 130-170 thousand minor
    faults and 4.94 s per call against 44-49 thousand and 4.68 s with the heap kept between calls.
    """
    global _heap_depth
    if _MALLOPT is None:
        yield
        return
    if _heap_depth == 0:
        _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        _MALLOPT(_M_TRIM_THRESHOLD, 2**31 - 1)
    _heap_depth += 1
    try:
        yield
    finally:
        _heap_depth -= 1
        if _heap_depth == 0:
            _MALLOPT(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
            release_freed_memory()



def release_freed_memory() -> None:
    """Hand memory freed since the last call back to the operating system (glibc's ``malloc_trim``).

    Streaming loops free one batch's large buffers before the next; glibc keeps such freed chunks in a
    fragmented heap, so without this the resident size creeps up with the number of batches although the
    data held stays constant. A no-op where the C library is not glibc.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
