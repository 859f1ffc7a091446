#!/usr/bin/env bash
# Re-render everything in results/ that is made from the committed result sets: the
# reports under report/, the REPORT block of results/README.md, and compare/ (the verdicts
# TF 2.18.1 -> 2.21.0 and the trend, at ten seeds and at the earlier three). Run from the
# repository root after `pip install -e .`; nothing here trains or writes into a result set.
set -uo pipefail
cd "$(dirname "$0")/.."
tf221=results/runs/20261127T010418Z_vm_tf2.21.0_cpu   # the evidence set on TF 2.21.0
tf218=results/runs/20261127T010959Z_vm_tf2.18.1_cpu   # the same matrix on TF 2.18.1 (tox -e tf218)
first=results/runs/20261125T232135Z_vm_tf2.21.0_cpu   # the first real run (model1, seed 0)
# The ten-seed sets (issue 22), both on machine e7f2a43f5494 (AVX-512).
tf221_10=results/runs/20261201T155606Z_vm_tf2.21.0_cpu
tf218_10=results/runs/20261201T190318Z_vm_tf2.18.1_cpu

catsdogs report "$tf221_10" --readme results/README.md --no-samples >/dev/null
catsdogs report "$tf218_10" --no-samples >/dev/null
catsdogs report "$tf221_10" --baseline "$tf218_10" --out results/report/tf2.21.0_vs_tf2.18.1_10seeds \
  --no-samples >/dev/null
mkdir -p results/compare
# compare exits 1 on a regression, 3 never (no --strict): record the verdicts either way.
catsdogs compare "$tf218_10" "$tf221_10" --json results/compare/tf2.18.1_to_tf2.21.0_10seeds.json \
  > results/compare/tf2.18.1_to_tf2.21.0_10seeds.md
echo "compare TF 2.18.1 -> 2.21.0, ten seeds: exit $?"
catsdogs trend "$tf218_10" "$tf221_10" --out results/report/trend_tf2.18.1_tf2.21.0_10seeds \
  --json results/compare/trend_tf2.18.1_tf2.21.0_10seeds.json \
  > results/compare/trend_tf2.18.1_tf2.21.0_10seeds.md
echo "trend, ten seeds: exit $?"
# The earlier evidence: three seeds each, November 2026, machine not recorded.
catsdogs report "$tf221" --no-samples >/dev/null
catsdogs report "$tf218" --no-samples >/dev/null
catsdogs report "$first" --no-samples >/dev/null
catsdogs report "$tf221" --baseline "$tf218" --out results/report/tf2.21.0_vs_tf2.18.1 \
  --no-samples >/dev/null
catsdogs compare "$tf218" "$tf221" --json results/compare/tf2.18.1_to_tf2.21.0.json \
  > results/compare/tf2.18.1_to_tf2.21.0.md
echo "compare TF 2.18.1 -> 2.21.0: exit $?"
catsdogs trend "$tf218" "$tf221" --out results/report/trend_tf2.18.1_tf2.21.0 \
  --json results/compare/trend_tf2.18.1_tf2.21.0.json > results/compare/trend_tf2.18.1_tf2.21.0.md
echo "trend: exit $?"
# The same release twice: the first set's seed 0 against the evidence set's (same
# configuration, a later commit).
catsdogs compare "$first" "$tf221" --json results/compare/tf2.21.0_rerun.json \
  > results/compare/tf2.21.0_rerun.md
echo "compare TF 2.21.0 rerun: exit $?"
# Identity probes: model1-3, seed 0, --limit 100, 3 epochs (smoke runs), on both releases
# with the same commit: where each model's numerics part between the releases.
probe218=results/runs/20261127T053750Z_vm_tf2.18.1_cpu
probe221=results/runs/20261127T053949Z_vm_tf2.21.0_cpu
catsdogs compare "$probe218" "$probe221" --json results/compare/identity_probe_tf2.18.1_to_tf2.21.0.json \
  > results/compare/identity_probe_tf2.18.1_to_tf2.21.0.md
echo "compare identity probe TF 2.18.1 -> 2.21.0: exit $?"
# Keras backends (issue 21): TensorFlow's ten-seed set against PyTorch's set on the same
# machine and Keras, paired by seed where both have it; statistics only (no identity).
torch=results/runs/20261201T201817Z_vm_torch2.13.0-cpu_cpu
catsdogs report "$torch" --no-samples >/dev/null
catsdogs compare "$tf221_10" "$torch" --json results/compare/tensorflow_to_torch_keras3.15.1.json \
  > results/compare/tensorflow_to_torch_keras3.15.1.md
echo "compare TensorFlow -> PyTorch: exit $?"
# The same for JAX (its set is filled over sessions with --resume, on the same machine).
jax=results/runs/20261201T233619Z_vm_jax0.10.2_cpu
catsdogs report "$jax" --no-samples >/dev/null
catsdogs compare "$tf221_10" "$jax" --json results/compare/tensorflow_to_jax_keras3.15.1.json \
  > results/compare/tensorflow_to_jax_keras3.15.1.md
echo "compare TensorFlow -> JAX: exit $?"
