#!/usr/bin/env bash
# The GPU recipe of the field demos: digits, segments and points at paper scale (the *_PAPER sizes of
# omegabridge/demos: more data, larger networks, 10-30x the CPU demos' training), trained and sampled
# on a CUDA GPU, scored on the CPU. One command, from the repository root, with the package installed:
#
#   bash bench/field_demos_gpu.sh [OUT]           # OUT defaults to $OUT, else ./field-demos-gpu
#   DEMOS="digits points" bash bench/field_demos_gpu.sh   # a subset
#
# Each demo writes its picture, metrics JSON and samples into OUT (as `omegabridge demo NAME` does)
# and its log into OUT/NAME.log; OUT/summary.md collects the score tables they print. Not yet run on a
# GPU (none was lent): the sizes are a first guess at an hour of H100 time, not measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-${OUT:-field-demos-gpu}}
PYTHON=${PYTHON:-python3}
mkdir -p "$out"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'field_demos_gpu.sh: no CUDA GPU here (torch.cuda.is_available() is False)')"
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" | tee "$out/summary.md"
for name in ${DEMOS:-digits segments points}; do
  start=$(date +%s)
  "$PYTHON" -m omegabridge demo "$name" --paper --device cuda --no-progress -o "$out" 2>&1 | tee "$out/$name.log"
  { echo; echo "## $name ($(( $(date +%s) - start )) s): python -m omegabridge demo $name --paper --device cuda";
    echo '```'; tail -n 12 "$out/$name.log"; echo '```'; } >> "$out/summary.md"  # the demo's score table
done
echo "results in $out (summary.md)"
