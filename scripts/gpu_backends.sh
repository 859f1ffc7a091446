#!/usr/bin/env bash
# Models 1-3 (seed 0, 20 epochs) on Keras' JAX and PyTorch backends, on a GPU machine that has
# jax and torch but no TensorFlow and no network (issue 21, item 6). Two steps:
#
#   scripts/gpu_backends.sh prepare [--python-version 3.12] [--source DIR] [--carry DIR]
#       (with PYTHON, default python3, the interpreter that has catsdogs's dependencies here)
#       HERE (PyPI and the dataset at hand). Writes the carry folder (default .gpu-carry/,
#       git-ignored, well under the 64 MiB a device call may carry):
#         wheels/  the project and what it needs that such a machine lacks, for its Python:
#                  keras, namex, optree, simplejpeg (pip download --only-binary, no deps)
#         data/    the DERIVED copy of the dataset: every image decoded as training decodes
#                  it, 160x160, re-encoded as JPEG quality 90 (about 28 MB); its marker file
#                  and fingerprint say so in every row (dataset=derived), never the official
#         COMMIT   the commit the copy was made from (recorded in every row: no git there)
#   scripts/gpu_backends.sh run [--backends jax,torch] [--epochs 20] [--variants LIST]
#                               [--seeds 0] [--limit N] [--expect gpu|cpu] [--out DIR]
#                               [--budget-s S] [--carry DIR]
#       THERE. Installs the wheels into a scratch folder (pip --no-index --target), trains
#       each backend's session into one result set (a session that runs past --budget-s
#       seconds is stopped with SIGTERM: its finished runs stay recorded), checks the facts
#       every row recorded (scripts/check_gpu_sets.py: the backend, its version, the device,
#       the GPU's name, CUDA, peak memory), and writes into OUT (default $OUT, else
#       ./gpu-out): gpu_results.tgz (results/runs/<set>/ for each set), check.txt, run_*.log.
#
# On the CPU (the test, tests/test_gpu_script.py): prepare with this Python's version and a
# small --source, then run with --expect cpu and a tiny --epochs/--limit.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
step="${1:-}"
shift || true

carry="$here/.gpu-carry"
python_version=3.12
source_dir="$here/../shared/data/cats_and_dogs_filtered"
quality=90
backends=jax,torch
epochs=20
variants=model1,model2,model3
seeds=0
limit=""
expect=gpu
out="${OUT:-$here/gpu-out}"
budget=270
while [ $# -gt 0 ]; do
  case "$1" in
    --carry) carry="$2"; shift 2 ;;
    --python-version) python_version="$2"; shift 2 ;;
    --source) source_dir="$2"; shift 2 ;;
    --quality) quality="$2"; shift 2 ;;
    --backends) backends="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --variants) variants="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --expect) expect="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --budget-s) budget="$2"; shift 2 ;;
    *) echo "gpu_backends.sh: unknown argument '$1'; see the comment at the top" >&2; exit 2 ;;
  esac
done

# What a machine with jax and torch lacks of what catsdogs and Keras need (its image has
# pandas, scipy, matplotlib, pillow, h5py, rich, ml-dtypes, absl-py, ...: README "Keras
# backends"). Pinned: the versions the CPU evidence ran with.
WHEELS=(keras==3.15.1 namex==0.1.0 optree==0.20.0 simplejpeg==1.9.0)

prepare() {
  if [ -e "$carry" ]; then
    echo "gpu_backends.sh: $carry exists; remove it first (a carry folder is made whole)" >&2
    exit 2
  fi
  mkdir -p "$carry/wheels"
  local platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
  done
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$python_version" "${platforms[@]}" -d "$carry/wheels" "${WHEELS[@]}"
  "$python" -m pip wheel --quiet --no-deps -w "$carry/wheels" "$here"
  PYTHONPATH="$here" "$python" -m catsdogs.dataset.derived "$source_dir" "$carry/data" \
    --quality "$quality"
  local commit
  commit="$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$here" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+dirty"
  fi
  echo "$commit" > "$carry/COMMIT"
  du -sh --apparent-size "$carry"/*
  du -sh --apparent-size "$carry"
}

run() {
  local site work results
  site="$(mktemp -d /tmp/catsdogs-site.XXXXXX)"
  work="$(mktemp -d /tmp/catsdogs-work.XXXXXX)"  # not the tree: -m catsdogs takes the wheel
  results="$work/results"
  mkdir -p "$out"
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$site" "$carry"/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  export CATSDOGS_GIT_COMMIT="$(cat "$carry/COMMIT")" PYTHONUNBUFFERED=1
  KERAS_BACKEND="${backends%%,*}" "$python" - <<'PY'
import importlib
for name in ("tensorflow", "jax", "torch", "keras", "simplejpeg", "catsdogs"):
    try:
        module = importlib.import_module(name)
        print(f"{name}: {getattr(module, '__version__', '?')} ({module.__file__})")
    except ImportError:
        print(f"{name}: not installed")
PY
  local status=0 code
  for backend in ${backends//,/ }; do
    echo "== $backend: $variants, seeds $seeds, $epochs epoch(s)${limit:+, --limit $limit}"
    set +e
    (cd "$work" && timeout -s TERM "$budget" "$python" -m catsdogs run --backend "$backend" \
       --data-dir "$carry/data" --variants "$variants" --seeds "$seeds" --epochs "$epochs" \
       ${limit:+--limit "$limit"} --results-dir "$results") > "$out/run_$backend.log" 2>&1
    code=$?
    set -e
    tail -n 25 "$out/run_$backend.log"
    echo "== $backend: exit $code"
    [ "$code" -eq 0 ] || status=1
  done
  if [ -d "$results/runs" ]; then
    tar czf "$out/gpu_results.tgz" -C "$work" results
    "$python" "$here/scripts/check_gpu_sets.py" --expect "$expect" --backends "$backends" \
      "$results"/runs/* | tee "$out/check.txt" || status=1
  else
    echo "no result set was written" | tee "$out/check.txt"
    status=1
  fi
  exit "$status"
}

case "$step" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/gpu_backends.sh prepare|run [options] (see the comment at the top)" >&2
     exit 2 ;;
esac
