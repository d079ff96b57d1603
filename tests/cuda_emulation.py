"""The CUDA kernels compiled for the CPU (csrc/cuda/host_emulation.h), for tests without a GPU.

``load()`` compiles kernels.cu with the host C++ compiler (-DOB_CUDA_HOST_EMULATION) together
with the bindings into a module with the API of ``omegabridge._cuda_ext`` whose addresses are
host addresses, caches it under build/cuda-emulation/<hash of the sources>/, and imports it
under its own name (so it never shadows the real extension). About 30 s to compile once.
"""

from __future__ import annotations

import hashlib
import os
import importlib.util
import shutil
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["csrc/cuda/kernels.cu", "pybridge/cuda_module.cpp", "csrc/cpu/layout.cpp", "csrc/cuda/device_layout.cpp"]
HEADERS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("csrc/include/omegabridge/*.h"), *ROOT.glob("csrc/cuda/*.h"),
                                                     ROOT / "csrc/cpu/layout.h"])


def _compiler() -> str | None:
    configured = (sysconfig.get_config_var("CXX") or "").split()
    for name in [*configured[:1], "g++", "c++", "clang++"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def load():
    """The emulated extension module; raises RuntimeError (with the compiler's output) if it cannot be built."""
    import pybind11

    digest = hashlib.sha256()
    for name in [*SOURCES, *HEADERS]:
        digest.update(name.encode() + (ROOT / name).read_bytes())
    directory = ROOT / "build" / "cuda-emulation" / digest.hexdigest()[:16]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    library = directory / f"_cuda_ext{suffix}"
    if not library.exists():
        compiler = _compiler()
        if compiler is None:
            raise RuntimeError("no C++ compiler found")
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f"partial-{os.getpid()}{suffix}"  # parallel test workers each write their own, then rename
        command = [
            compiler, "-O2", "-std=c++17", "-fPIC", "-shared", "-w", "-DOB_CUDA_HOST_EMULATION",
            f"-I{ROOT / 'csrc/include'}", f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}",
            "-x", "c++", str(ROOT / SOURCES[0]), "-x", "none", *(str(ROOT / s) for s in SOURCES[1:]), "-o", str(partial),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling the emulated CUDA kernels failed:\n{result.stderr[-4000:]}")
        partial.rename(library)
    spec = importlib.util.spec_from_file_location("omegabridge_cuda_emulation._cuda_ext", library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_or_skip():
    """``load()``, or a skip of the calling test (a failure under OMEGABRIDGE_REQUIRE_CUDA_BUILD=1)."""
    import pytest

    try:
        return load()
    except RuntimeError as error:
        if os.environ.get("OMEGABRIDGE_REQUIRE_CUDA_BUILD") == "1":
            pytest.fail(f"OMEGABRIDGE_REQUIRE_CUDA_BUILD=1 but the emulated CUDA kernels cannot be built: {error}")
        pytest.skip(f"the emulated CUDA kernels cannot be built: {error}")


def patch_backend(monkeypatch, extension) -> None:
    """Put ``extension`` (from ``load()``) behind omegabridge.ops.backends.cuda for one test, its four
    torch.cuda calls replaced, so dispatch's backend="cuda" runs on CPU tensors."""
    import contextlib

    import torch

    from omegabridge.ops.backends import cuda as cuda_backend

    monkeypatch.setattr(cuda_backend, "load", lambda: extension)
    monkeypatch.setattr(cuda_backend, "unavailable_reason", lambda device=None: "")
    monkeypatch.setattr(cuda_backend, "_placed", lambda device: torch.device(device))
    monkeypatch.setattr(cuda_backend, "_on", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(cuda_backend, "_upload", lambda host, device: host.to(device))
    monkeypatch.setattr(cuda_backend, "_stream", lambda device: 0)
