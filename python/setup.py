"""Builds the mandala package: CMake builds the extension mandala._core (with libmandala linked
in statically) from this repository; the pure-Python modules are copied as they are.

Offline, with Debian's packages (scripts/setup installs them):

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation --no-index ./python
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(self.build_temp).resolve() / "cmake"
        configure = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DMANDALA_BUILD_PYTHON=ON",
            f"-DMANDALA_PYTHON_EXECUTABLE={sys.executable}",
            "-DMANDALA_BUILD_TESTS=OFF",
            "-DMANDALA_BUILD_EXAMPLES=OFF",
            "-DMANDALA_BUILD_BENCH=OFF",
            "-DMANDALA_BUILD_TOOLS=OFF",
            "-DMANDALA_BUILD_FINGERPRINT=OFF",
            "-DMANDALA_INSTALL=OFF",
        ]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "mandala_python_core"])
        built = sorted((build_dir / "python" / "mandala").glob("_core*.so"))
        if not built:
            raise RuntimeError(f"the build made no extension in {build_dir / 'python' / 'mandala'}")
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[0], target)


setup(
    name="mandala",
    version="0.1.0",
    description="Persistent, reusable, queryable computations (Python over the C++ engine)",
    packages=["mandala"],
    ext_modules=[CMakeExtension("mandala._core")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    zip_safe=False,
)
