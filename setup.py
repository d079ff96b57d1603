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
             (omegabridge then uses its torch reference code; see omegabridge/_native.py).

Compiler flags: ``-O3 -std=c++17 -fno-math-errno -fno-trapping-math`` and ``-fopenmp`` when a test compile accepts
it. Never ``-march=native``: a built wheel must run on any x86-64 machine. The vectorised
kernels are compiled for AVX-512, AVX2+FMA and baseline x86-64 inside the one extension
(``target_clones`` in csrc/cpu/kernels.cpp); the CPU picks its clone at load time.
``OMEGABRIDGE_CPU_BASELINE=1`` builds the baseline only (for compilers without
``target_clones``, or to test that path).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
ENV_BUILD_NATIVE = "OMEGABRIDGE_BUILD_NATIVE"
EXTENSION_NAME = "omegabridge._native_ext"


def _native_mode() -> str:
    """'off', 'force' or 'try', from OMEGABRIDGE_BUILD_NATIVE."""
    value = os.environ.get(ENV_BUILD_NATIVE, "").strip()
    if value == "":
        return "try"
    if value == "0":
        return "off"
    if value == "1":
        return "force"
    raise SystemExit(f"{ENV_BUILD_NATIVE} must be 0, 1 or unset, got {value!r}")


def _warn(message: str) -> None:
    banner = "=" * 78
    text = "\n".join(textwrap.wrap(message, 76))
    print(f"\n{banner}\nWARNING (omegabridge): {text}\n{banner}\n", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """build_ext that adds pybind11 / OpenMP flags and treats failure per OMEGABRIDGE_BUILD_NATIVE."""

    def run(self) -> None:
        mode = _native_mode()
        if mode == "off":
            print(f"omegabridge: {ENV_BUILD_NATIVE}=0, skipping the native extension", file=sys.stderr)
            return
        try:
            super().run()
        except Exception as error:  # compiler missing, compile or link error, missing pybind11 ...
            if mode == "force":
                raise
            _warn(
                f"building the native extension {EXTENSION_NAME} failed ({type(error).__name__}: "
                f"{error}). omegabridge is installed without it and uses the slower torch "
                f"reference code. Set {ENV_BUILD_NATIVE}=1 to make this an error, or "
                f"{ENV_BUILD_NATIVE}=0 to skip the build silently."
            )

    def build_extension(self, ext: Extension) -> None:
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
    if _native_mode() == "off":
        return []
    return [
        Extension(
            EXTENSION_NAME,
            sources=["pybridge/module.cpp", "csrc/cpu/layout.cpp", "csrc/cpu/kernels.cpp", "csrc/cpu/final_step.cpp"],
            include_dirs=["csrc/include"],
            depends=[
                *(f"csrc/include/omegabridge/{name}.h" for name in ("config", "fastmath", "philox", "special", "posterior")),
                "csrc/cpu/layout.h",
                "csrc/cpu/kernels.h",
                "csrc/cpu/philox_avx2.h",
            ],
            language="c++",
        )
    ]


setup(
    packages=[*find_packages(include=["omegabridge", "omegabridge.*"]), "omegabridge.kernels"],
    package_dir={"omegabridge.kernels": "kernels"},
    package_data={"omegabridge": ["data/*"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
