"""Build script for omegabridge: the Python packages plus the optional C++ extension.

Metadata lives in pyproject.toml, including the extras (``dev``; ``demo``: statsmodels and
pandas for ``omegabridge demo``) and the console script ``omegabridge = omegabridge.cli:main``;
extras are declared there only, not here. This file declares the packages (``kernels/`` is
installed as ``omegabridge.kernels``), the package data and the pybind11 extension
``omegabridge._native_ext`` built from ``pybridge/module.cpp``.

The extension is optional, controlled by the environment variable OMEGABRIDGE_BUILD_NATIVE:

* ``0``   -- do not build it;
* ``1``   -- build it, and fail the install if it cannot be built;
* unset   -- try to build it; on failure print a warning and install without it
             (omegabridge then uses its torch reference code; see omegabridge/ops/native.py).

Compiler flags: ``-O3 -std=c++17 -fno-math-errno -fno-trapping-math`` and ``-fopenmp`` when a test compile accepts
it. Never ``-march=native``: a built wheel must run on any x86-64 machine. The vectorised
kernels are compiled for AVX-512, AVX2+FMA and baseline x86-64 inside the one extension
(``target_clones`` in csrc/cpu/kernels.cpp); the CPU picks its clone at load time.
``OMEGABRIDGE_CPU_BASELINE=1`` builds the baseline only (for compilers without
``target_clones``, or to test that path).

The CUDA extension ``omegabridge._cuda_ext`` (csrc/cuda/kernels.cu, compiled by nvcc, plus the
host-compiled bindings pybridge/cuda_module.cpp, linked against the static CUDA runtime and not
against libtorch) is controlled by OMEGABRIDGE_BUILD_CUDA, independently of the CPU one:

* ``0``   -- do not build it;
* ``1``   -- build it, and fail the install if nvcc is missing or the build fails;
* unset   -- build it when nvcc is found (``$CUDA_HOME/bin/nvcc`` or on PATH); on failure print
             a warning and install without it.

``OMEGABRIDGE_CUDA_ARCHS`` (default ``80;90``) lists the SASS architectures; PTX for the
highest one is embedded too, so newer GPUs JIT-compile it. ptxas's resource report (registers,
spills) is written to ``<build_temp>/cuda_resource_usage.txt`` and a spill is reported as a
warning (docs/cuda.md keeps the current figures).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
ENV_BUILD_NATIVE = "OMEGABRIDGE_BUILD_NATIVE"
ENV_BUILD_CUDA = "OMEGABRIDGE_BUILD_CUDA"
EXTENSION_NAME = "omegabridge._native_ext"
CUDA_EXTENSION_NAME = "omegabridge._cuda_ext"
CUDA_SOURCES = ["csrc/cuda/kernels.cu"]  # one translation unit: the CUDA build is the slow part of CI
CUDA_DEPENDS = [
    *(f"csrc/include/omegabridge/{name}.h" for name in ("config", "fastmath", "philox", "special", "posterior")),
    "csrc/cuda/launch.h",
    "csrc/cuda/device_layout.h",
]


def _mode(variable: str) -> str:
    """'off', 'force' or 'try', from an OMEGABRIDGE_BUILD_* variable."""
    value = os.environ.get(variable, "").strip()
    if value == "":
        return "try"
    if value == "0":
        return "off"
    if value == "1":
        return "force"
    raise SystemExit(f"{variable} must be 0, 1 or unset, got {value!r}")


def _native_mode() -> str:
    return _mode(ENV_BUILD_NATIVE)


def _cuda_mode() -> str:
    return _mode(ENV_BUILD_CUDA)


def _nvcc() -> str | None:
    """Path of nvcc: $CUDA_HOME/bin/nvcc, else the one on PATH, else None."""
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


def _cudart_static_dir(nvcc: str) -> str | None:
    """The directory holding libcudart_static.a: from nvcc's own -L flags (nvcc may be a wrapper
    script outside the toolkit), else the usual places under the toolkit."""
    candidates = []
    try:
        dry = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        candidates += re.findall(r'-L"?([^"\s]+)"?', dry.stdout + dry.stderr)
    except (OSError, subprocess.SubprocessError):
        pass
    for home in (os.environ.get("CUDA_HOME"), os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"):
        if home:
            candidates += [os.path.join(home, "lib64"), os.path.join(home, "targets", "x86_64-linux", "lib")]
    return next((d for d in candidates if os.path.isfile(os.path.join(d, "libcudart_static.a"))), None)


def _cuda_archs() -> list[str]:
    value = os.environ.get("OMEGABRIDGE_CUDA_ARCHS", "80;90")
    archs = [a.strip() for a in value.replace(",", ";").split(";") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        raise SystemExit(f"OMEGABRIDGE_CUDA_ARCHS must list compute capabilities such as '80;90', got {value!r}")
    return archs


def _warn(message: str) -> None:
    banner = "=" * 78
    text = "\n".join(textwrap.wrap(message, 76))
    print(f"\n{banner}\nWARNING (omegabridge): {text}\n{banner}\n", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """build_ext that builds each extension per its switch (OMEGABRIDGE_BUILD_NATIVE, OMEGABRIDGE_BUILD_CUDA):
    a failure is an error when forced and a warning otherwise; the two builds are independent."""

    def run(self) -> None:
        if _native_mode() == "off":
            print(f"omegabridge: {ENV_BUILD_NATIVE}=0, skipping the native extension", file=sys.stderr)
        if _cuda_mode() == "off":
            print(f"omegabridge: {ENV_BUILD_CUDA}=0, skipping the CUDA extension", file=sys.stderr)
        elif _cuda_mode() == "try" and _nvcc() is None:
            print("omegabridge: nvcc not found, skipping the CUDA extension", file=sys.stderr)
        try:
            super().run()
        except Exception as error:  # outside build_extension (e.g. setting up the compiler)
            if "force" in (_native_mode(), _cuda_mode()):
                raise
            _warn(
                f"building the extensions failed ({type(error).__name__}: {error}). omegabridge is installed "
                "without them and uses the torch reference code (and Triton on GPUs)."
            )

    def build_extension(self, ext: Extension) -> None:
        cuda = ext.name == CUDA_EXTENSION_NAME
        variable = ENV_BUILD_CUDA if cuda else ENV_BUILD_NATIVE
        mode = _cuda_mode() if cuda else _native_mode()
        started = time.monotonic()
        try:
            if cuda:
                self._build_cuda(ext)
            else:
                self._build_native(ext)
        except Exception as error:  # compiler missing, compile or link error, missing pybind11 ...
            if mode == "force":
                raise
            fallback = (
                "the CUDA backend is unavailable (backend='triton' or 'reference' still work on GPUs)"
                if cuda
                else "omegabridge uses the slower torch reference code on CPU"
            )
            _warn(
                f"building the extension {ext.name} failed ({type(error).__name__}: {error}). omegabridge is "
                f"installed without it; {fallback}. Set {variable}=1 to make this an error, or {variable}=0 "
                "to skip the build silently."
            )
            return
        print(f"omegabridge: {ext.name} built or up to date ({time.monotonic() - started:.0f} s)", file=sys.stderr)

    def _build_native(self, ext: Extension) -> None:
        import pybind11  # build requirement; imported here so OMEGABRIDGE_BUILD_NATIVE=0 needs no pybind11

        ext.include_dirs = [*ext.include_dirs, pybind11.get_include()]
        if self.compiler.compiler_type == "msvc":
            ext.extra_compile_args = ["/O2", "/std:c++17", "/EHsc", "/openmp"]
        else:
            # -fno-math-errno lets sqrtf vectorise (errno is never read); -fno-trapping-math lets
            # the compiler evaluate both sides of a select (nothing enables FP traps), which
            # branch-free math needs to vectorise. Neither changes an IEEE result. No
            # -ffast-math: the kernels rely on inf and NaN behaving as IEEE says.
            ext.extra_compile_args = [
                "-O3", "-std=c++17", "-fvisibility=hidden", "-fno-math-errno", "-fno-trapping-math",
            ]
            if self._accepts_openmp():
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args = [*ext.extra_link_args, "-fopenmp"]
            else:
                _warn("the C++ compiler does not accept -fopenmp; the native extension is built single-threaded.")
        if os.environ.get("OMEGABRIDGE_CPU_BASELINE", "") == "1":
            ext.define_macros = [*ext.define_macros, ("OB_NO_ISA_CLONES", "1")]
        super().build_extension(ext)

    def _build_cuda(self, ext: Extension) -> None:
        """nvcc compiles the .cu sources to objects; the host compiler compiles the bindings and links
        everything with the static CUDA runtime (the module imports without a GPU driver)."""
        import pybind11

        nvcc = _nvcc()
        if nvcc is None:
            raise RuntimeError("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
        if self.compiler.compiler_type == "msvc":
            raise RuntimeError("the CUDA extension is built on Linux only")
        library_dir = _cudart_static_dir(nvcc)
        if library_dir is None:
            raise RuntimeError(f"libcudart_static.a not found in the library directories of {nvcc}")
        archs = _cuda_archs()
        gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
        gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")  # PTX for newer GPUs
        objects = []
        os.makedirs(self.build_temp, exist_ok=True)
        for source in CUDA_SOURCES:
            target = os.path.join(self.build_temp, os.path.basename(source) + ".o")
            inputs = [source, *CUDA_DEPENDS]
            if self.force or not os.path.exists(target) or os.path.getmtime(target) < max(map(os.path.getmtime, inputs)):
                command = [
                    nvcc, "-c", source, "-o", target, "-std=c++17", "-O3", "-Icsrc/include",
                    "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden", "-Xptxas", "-v", *gencode,
                ]
                print(" ".join(command), file=sys.stderr, flush=True)
                result = subprocess.run(command, capture_output=True, text=True)
                report = os.path.join(self.build_temp, "cuda_resource_usage.txt")
                with open(report, "w") as handle:
                    handle.write(result.stdout + result.stderr)
                if result.returncode != 0:
                    raise RuntimeError(f"nvcc failed on {source}:\n{result.stderr[-4000:]}")
                spills = [line for line in (result.stdout + result.stderr).splitlines()
                          if re.search(r"[1-9]\d* bytes spill (stores|loads)", line)]
                if spills:
                    _warn(f"ptxas reports register spills in {source} (see {report}): {spills[0].strip()}")
            objects.append(target)
        ext.include_dirs = [*ext.include_dirs, pybind11.get_include()]
        ext.extra_compile_args = ["-O3", "-std=c++17", "-fvisibility=hidden"]
        ext.extra_objects = [*ext.extra_objects, *objects]
        ext.library_dirs = [*ext.library_dirs, library_dir]
        ext.libraries = [*ext.libraries, "cudart_static", "dl", "rt", "pthread"]
        super().build_extension(ext)

    def _accepts_openmp(self) -> bool:
        """Whether the compiler compiles and links a tiny OpenMP program with -fopenmp."""
        tmp = tempfile.mkdtemp(prefix="omegabridge-omp-")
        try:
            source = os.path.join(tmp, "omp_check.cpp")
            with open(source, "w") as handle:
                handle.write("#include <omp.h>\nint probe() { return omp_get_max_threads(); }\n")
            objects = self.compiler.compile([source], output_dir=tmp, extra_postargs=["-fopenmp"])
            self.compiler.link_shared_object(
                objects, os.path.join(tmp, "omp_check.so"), extra_postargs=["-fopenmp"]
            )
            return True
        except Exception:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _extensions() -> list[Extension]:
    extensions = []
    if _native_mode() != "off":
        extensions.append(
            Extension(
                EXTENSION_NAME,
                sources=["pybridge/module.cpp", "csrc/cpu/layout.cpp", "csrc/cpu/kernels.cpp", "csrc/cpu/final_step.cpp"],
                include_dirs=["csrc/include"],
                depends=[
                    *(f"csrc/include/omegabridge/{name}.h" for name in ("config", "fastmath", "philox", "special", "posterior")),
                    "csrc/cpu/layout.h",
                    "csrc/cpu/kernels.h",
                    "csrc/cpu/philox_avx2.h",
                    "csrc/cpu/tile.h",
                ],
                language="c++",
            )
        )
    cuda = _cuda_mode()
    if cuda == "force" or (cuda == "try" and _nvcc() is not None):
        extensions.append(
            Extension(
                CUDA_EXTENSION_NAME,
                sources=["pybridge/cuda_module.cpp", "csrc/cpu/layout.cpp", "csrc/cuda/device_layout.cpp"],
                include_dirs=["csrc/include"],
                depends=[*CUDA_SOURCES, *CUDA_DEPENDS, "csrc/cpu/layout.h"],
                language="c++",
            )
        )
    return extensions


setup(
    packages=[*find_packages(include=["omegabridge", "omegabridge.*"]), "omegabridge.kernels"],
    package_dir={"omegabridge.kernels": "kernels"},
    package_data={"omegabridge": ["data/*"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
