"""The numerical environment that decides the bytes of the model steps (``sae``, ``activations``).

What varied: on x86 CPUs torch's float32 matmuls run in MKL's sgemm, which picks its kernel by
thread count (and by memory alignment).  A (5..11 rows, 576) @ (576, 1536) product differs in its
last bits between 1 and 2 threads, so a forward or SAE-encode block with that few rows (a short
last batch, a batch of one short prompt) made activations depend on where the step ran: the
Dagster process at the machine's thread count, or a Dask worker at one thread.  SAE training
varies once more: ATen's reductions over the batch (the bias gradients, the norm estimate) split
their work by the intra-op thread count.

What fixes it, in two modes (``$CLUSTER_ASSETS_NUMERICS``):

- ``native`` (default): MKL's Conditional Numerical Reproducibility in strict mode on its
  automatic branch (``MKL_CBWR=AUTO,STRICT``: gemm results independent of thread count and
  alignment, at full speed), ATen's best kernels, and SAE training on a fixed number of threads
  (:data:`MODES`) whatever the machine.  The bytes still depend on the CPU (MKL and
  ATen dispatch on it), so the class names the CPU model: ``cpu-<model>``.
- ``reference``: MKL's COMPATIBLE branch (strict), ATen's AVX2 kernels and one torch thread for
  every model step, and for every stage numpy's AVX2 kernels (its AVX-512 ``log`` rounds
  differently, which moves the feature entropies) and OpenBLAS' Haswell kernels: meant to give
  the same bytes on every x86-64 CPU with AVX2, Intel or AMD, for a cluster of mixed machines and
  for the golden run (``tests/golden.py``); 0.46x the extraction throughput.  (Strict CNR alone
  is not enough on the COMPATIBLE branch: some shapes still differ at 3 threads, hence the one
  thread.)  Class ``cpu-x86-reference``.

Both environment variables are read once, at MKL's first call and torch's first dispatch, so
:func:`configure` sets them when ``cluster_assets`` is imported (before any torch work), and
:func:`model_numerics` checks in every model step that they took effect.  Where MKL is missing
(ARM), the model steps run on one torch thread: class ``cpu-<machine>-1thread``.  GPUs promise no
bitwise equality with a CPU: their class is the device type (``cuda``).  The class is part of
the content address of the model steps, so artifacts of different classes never mix.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NUMERICS_ENV = "CLUSTER_ASSETS_NUMERICS"
#: Per mode: MKL's reproducibility mode, ATen's CPU capability (None: its own choice), and the
#: torch intra-op threads of the forward (None: the caller's count) and of SAE training.
MODES: dict[str, tuple[str, str | None, int | None, int]] = {
    "native": ("AUTO,STRICT", None, None, 2),
    "reference": ("COMPATIBLE,STRICT", "avx2", 1, 1),
}
REFERENCE_CPU = "cpu-x86-reference-2"
#: What the reference mode asks of numpy and OpenBLAS; both read it when numpy is imported.
REFERENCE_LIBRARIES = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"}
_CBWR_STRICT = 0x10000  # mkl_cbwr.h
_CBWR_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 9: "AVX", 10: "AVX2", 12: "AVX512", 14: "AVX512_E1"}


class NumericsError(RuntimeError):
    """The numerical environment that the address promises is not the one torch runs with."""


def mode() -> str:
    """``native`` (default) or ``reference``, from ``$CLUSTER_ASSETS_NUMERICS``."""
    value = os.environ.get(NUMERICS_ENV, "native")
    if value not in MODES:
        raise NumericsError(f"{NUMERICS_ENV}={value!r}: expected one of {sorted(MODES)}")
    return value


def _x86() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64"}


def configure() -> None:
    """Ask MKL and ATen for the mode's CPU path (x86 only); must run before torch's first op."""
    if _x86():
        cbwr, capability, _, _ = MODES[mode()]
        os.environ.setdefault("MKL_CBWR", cbwr)
        if capability is not None:
            os.environ.setdefault("ATEN_CPU_CAPABILITY", capability)
        if mode() == "reference":
            for name, value in REFERENCE_LIBRARIES.items():
                os.environ.setdefault(name, value)


def check_libraries() -> None:
    """In the reference mode, that numpy runs its AVX2 kernels and OpenBLAS its Haswell ones (every
    stage's bytes depend on them), else a :class:`NumericsError`."""
    if mode() != "reference" or not _x86():
        return
    import numpy as np
    from threadpoolctl import threadpool_info

    features = np._core._multiarray_umath.__cpu_features__  # pyright: ignore[reportAttributeAccessIssue]
    wide = sorted(k for k in ("X86_V4", "AVX512_ICL", "AVX512_SPR") if features.get(k))
    blas = sorted({str(p.get("architecture")) for p in threadpool_info() if p.get("internal_api") == "openblas"})
    if wide or any(arch.lower() != "haswell" for arch in blas):
        raise NumericsError(
            f"{NUMERICS_ENV}=reference needs numpy's AVX2 kernels and OpenBLAS' Haswell ones, but numpy runs {wide} and "
            f"OpenBLAS {blas}: numpy was imported before cluster_assets; export "
            + " ".join(f"{k}={v!r}" for k, v in REFERENCE_LIBRARIES.items())
            + " in the environment of every process that runs steps."
        )


def _requested() -> bool:
    """The environment asks MKL and ATen for exactly what the mode needs."""
    cbwr, capability, _, _ = MODES[mode()]
    return (
        _x86()
        and os.environ.get("MKL_CBWR", "").replace(" ", "").upper() == cbwr
        and (capability is None or os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == capability)
    )


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_class(device: str) -> str:
    """The numerics class of ``device`` (part of the address of every model step); no torch import.

    ``cpu-x86-reference-2``, ``cpu-<CPU model>`` (native), ``cpu-<machine>-1thread`` where MKL's
    reproducible modes are not to be had, or the accelerator's type (``cuda``, ``mps``).
    """
    kind = device.split(":")[0]
    if kind != "cpu":
        return kind
    if not _requested():
        return f"cpu-{platform.machine().lower()}-1thread"
    if mode() == "reference":
        return REFERENCE_CPU
    return "cpu-" + re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")


def threads(device: str, training: bool = False) -> int | None:
    """torch intra-op threads a model step runs on (None: the caller's count); training never has None."""
    if not device.startswith("cpu"):
        return None
    if device_class(device).endswith("-1thread"):
        return 1
    _, _, forward, train = MODES[mode()]
    return train if training else forward


def mkl_cbwr() -> str | None:
    """MKL's active reproducibility mode (e.g. ``AUTO,STRICT``), or None without MKL."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    value = get(-1)  # MKL_CBWR_ALL
    branch = _CBWR_BRANCHES.get(value & 0xFFFF, str(value & 0xFFFF))
    return f"{branch},STRICT" if value & _CBWR_STRICT else branch


@contextmanager
def fixed_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (None: left alone), then restored."""
    if n is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_EXACT_SQRT: list[Any] = []  # the registered library, kept alive for the process


def exact_sqrt() -> None:
    """Give torch's CPU ``sqrt`` (and its ``out`` and in-place forms) a correctly rounded kernel:
    numpy's, which is the IEEE square-root instruction on every x86 CPU.  Once per process.

    torch's own runs in MKL's vector math, whose result depends on the CPU (see the module notes).
    Registered below autograd, so gradients are torch's own formula on the exact result.
    """
    if _EXACT_SQRT:
        return
    import warnings

    import numpy as np
    import torch

    native = (torch.float32, torch.float64, torch.complex64, torch.complex128)

    def sqrt(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if x.is_floating_point() or x.is_complex() else torch.get_default_dtype()  # torch's promotion
        values = x.detach().numpy() if x.dtype in native else x.detach().to(torch.float32).numpy()  # exact for narrower floats
        with np.errstate(invalid="ignore"):  # negative: nan, as torch
            root = np.sqrt(values, out=np.empty(values.shape, values.dtype))
        return torch.from_numpy(root).to(dtype)

    def sqrt_out(x: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
        return out.resize_(x.shape).copy_(sqrt(x))

    def sqrt_(x: torch.Tensor) -> torch.Tensor:
        return x.copy_(sqrt(x))

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():  # "overriding a previously registered kernel": the point
        warnings.simplefilter("ignore", UserWarning)
        for name, kernel in (("sqrt", sqrt), ("sqrt.out", sqrt_out), ("sqrt_", sqrt_)):
            library.impl(name, kernel, "CPU")
    _EXACT_SQRT.append(library)


@contextmanager
def model_numerics(device: str) -> Iterator[dict[str, Any]]:
    """Run a model step under the numerics its class promises; yields that environment for the metadata.

    On the CPU, MKL's mode and ATen's capability are checked against the mode (else a
    :class:`NumericsError` that says why) and torch runs on the mode's thread count.
    """
    import torch

    cls = device_class(device)
    env: dict[str, Any] = {"class": cls, "mode": mode(), "device": device, "dtype": "float32", "torch": torch.__version__}
    if cls.startswith("cpu"):
        capability, cbwr = torch.backends.cpu.get_cpu_capability(), mkl_cbwr()
        env |= {"cpu": cpu_model(), "cpu_capability": capability, "mkl_cbwr": cbwr}
        if cls == REFERENCE_CPU:
            exact_sqrt()
            env["sqrt"] = "exact"
        want_cbwr, want_capability, _, _ = MODES[mode()]
        if not cls.endswith("-1thread") and (cbwr != want_cbwr or (want_capability is not None and capability != want_capability.upper())):
            raise NumericsError(
                f"{NUMERICS_ENV}={mode()} needs MKL_CBWR={want_cbwr}"
                + (f" and ATen's {want_capability.upper()} kernels" if want_capability else "")
                + f" for bytes that do not depend on the thread count, but MKL runs {cbwr} and ATen {capability}. "
                "Torch did work before cluster_assets was imported: import cluster_assets first, or export MKL_CBWR"
                + (" and ATEN_CPU_CAPABILITY" if want_capability else "")
                + "."
            )
    elif cls == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    with fixed_threads(threads(device)):
        env["torch_threads"] = torch.get_num_threads()
        env["training_threads"] = threads(device, training=True)
        yield env
