# Sourced by .ci/ci-sanitize and .ci/ci-fuzz (from the repository root): builds
# masksegx._core with AddressSanitizer + UndefinedBehaviorSanitizer (-DMASKSEGX_SANITIZE=ON)
# into build/sanitize, stages a package that uses it in build/sanitize/python, and exports
# the environment that runs Python against it. The developer build (build/dev,
# python/masksegx/_core*.so) is left alone.
sanitize_build_dir=build/sanitize
sanitize_stage="$sanitize_build_dir/python/masksegx"

if ! command -v g++ >/dev/null; then  # Debian's g++ brings libasan and libubsan
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
# The wheel build got these in an isolated environment; this build needs its own.
python -m pip install -q pybind11 cmake ninja >/dev/null

cmake -S . -B "$sanitize_build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMASKSEGX_SANITIZE=ON -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" >/dev/null
cmake --build "$sanitize_build_dir" -j"${MASKSEGX_BUILD_JOBS:-2}"

# Staged package: links to the sources, plus the instrumented extension.
rm -rf "$sanitize_stage" && mkdir -p "$sanitize_stage"
for entry in python/masksegx/*; do
  case "$entry" in *_core*.so) continue ;; esac
  ln -s "$PWD/$entry" "$sanitize_stage/"
done
cp "$sanitize_build_dir"/_core*.so "$sanitize_stage/"

# CPython is not instrumented, so the ASan runtime must be loaded first, and libstdc++ with
# it: ASan's __cxa_throw interceptor aborts if libstdc++ was not there at start-up (python
# itself does not link it). CPython's intentional leaks at exit make leak detection useless.
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$PWD/$sanitize_build_dir/python"

python - <<'PY'
import masksegx._core as core
assert "build/sanitize" in core.__file__, core.__file__
print("sanitized extension:", core.__file__)
PY
