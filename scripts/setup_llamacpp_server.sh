#!/usr/bin/env bash
# Copyright 2026 vlm_nav maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# A llama.cpp model server in its own venv, apart from the robot's: llama-cpp-python[server]
# built from source (cmake, CPU), plus the sdist's vendored llama.cpp (its GGUF converters).
#
#   bash scripts/setup_llamacpp_server.sh            # creates $VLM_NAV_SERVERS/llamacpp
#
# VLM_NAV_SERVERS defaults to ~/.cache/vlm_nav/servers. Idempotent: an existing venv whose
# llama_cpp imports is kept. The build time is written to $ROOT/BUILD_SECONDS (580 s on
# 2 shared cores; ~360 MB on disk). Needs cmake, a C++ compiler and the package index.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="${VLM_NAV_SERVERS:-$HOME/.cache/vlm_nav/servers}/llamacpp"
PYTHON="${PYTHON:-python3}"

if [ -x "$ROOT/venv/bin/python" ] && "$ROOT/venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null \
        && [ -f "$ROOT/llama.cpp/convert_hf_to_gguf.py" ]; then
    echo "llama.cpp server ready in $ROOT"
    exit 0
fi
mkdir -p "$ROOT"
started=$(date +%s)
"$PYTHON" -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install --quiet --upgrade pip
# The sdist: its vendor/llama.cpp holds convert_hf_to_gguf.py and gguf-py.
rm -rf "$ROOT/sdist" && mkdir -p "$ROOT/sdist"
"$ROOT/venv/bin/pip" download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$ROOT/sdist"
tar -xzf "$ROOT/sdist/llama_cpp_python-$VERSION.tar.gz" -C "$ROOT/sdist"
rm -rf "$ROOT/llama.cpp"
cp -r "$ROOT/sdist/llama_cpp_python-$VERSION/vendor/llama.cpp" "$ROOT/llama.cpp"
# CPU build, portable (no -march=native), as many jobs as cores.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF}" \
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$ROOT/venv/bin/pip" install --no-cache-dir \
    "$ROOT/sdist/llama_cpp_python-$VERSION.tar.gz[server]"
"$ROOT/venv/bin/python" -c 'import llama_cpp.server; import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
rm -rf "$ROOT/sdist"
echo $(( $(date +%s) - started )) > "$ROOT/BUILD_SECONDS"
echo "llama.cpp server ready in $ROOT ($(cat "$ROOT/BUILD_SECONDS") s)"
