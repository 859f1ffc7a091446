#!/usr/bin/env bash
# The bench workflow's last job: from the result sets that the release x shard jobs
# uploaded (SETS/results-<release>-shard<K>/<result set>/), one report per release with
# its shards merged, the trend across releases, and the newest release compared with the
# one before it. Exits 1 when that comparison finds a regression (catsdogs compare's own
# exit status), 2 when there is nothing to report.
#
#   .github/bench-report.sh SETS OUT     (tables, figures and texts go into OUT)
set -euo pipefail
sets=${1:?usage: bench-report.sh SETS OUT}
out=${2:?usage: bench-report.sh SETS OUT}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}  # the job's summary page, on GitHub

mapfile -t releases < <(find "$sets" -mindepth 1 -maxdepth 1 -name 'results-*-shard*' \
  -printf '%f\n' | sed -E 's/^results-(.*)-shard[0-9]+$/\1/' | sort -uV)
if (( ${#releases[@]} == 0 )); then
  echo "bench-report: no results-<release>-shard<K> folders in $sets" >&2
  exit 2
fi
mkdir -p "$out"

for release in "${releases[@]}"; do
  echo "## $release" >> "$summary"
  catsdogs report "$sets/results-$release-shard"*/*/ --format github --out "$out/$release" \
    | tee -a "$summary"
done

catsdogs trend "$sets"/results-*-shard*/*/ --out "$out" | tee "$out/trend.txt"

if (( ${#releases[@]} < 2 )); then
  echo "bench-report: one release (${releases[0]}), nothing to compare it with"
  exit 0
fi
base=${releases[-2]}
candidate=${releases[-1]}
echo "## compare $base -> $candidate" >> "$summary"
catsdogs compare "$sets/results-$base-shard"*/*/ --candidate "$sets/results-$candidate-shard"*/*/ \
  | tee "$out/compare.txt" | tee -a "$summary"
