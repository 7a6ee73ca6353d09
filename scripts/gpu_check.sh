#!/usr/bin/env bash
# GPU check of the custom ops (kernels/*.cu): on a machine with an NVIDIA GPU, builds gaft with CUDA into
# build-gpu/, runs the CUDA parity tests (tests/ops/cuda_*_test.cpp), then times both ops against their
# references with CUDA events and prints a table next to the device's measured copy bandwidth and bf16
# matmul rate (tools/bench_ops.cpp --device cuda), and trains LoRA adapters with activation checkpointing
# under bf16 autocast for 10 steps, then 6 steps of the gaft objective (rollouts, LM-judge scorer, fused
# AdamW) printing each step's host reads, and full fine-tuning through distributed.sharding's code path at
# world size 1 against unsharded AdamW. Without a GPU it says so and exits 0.
# Budget: under 8 minutes on one GPU, build included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU here (nvidia-smi absent or failing); nothing to check."
  exit 0
fi
nvidia-smi -L

# Compile for this GPU only (LibTorch's CMake would otherwise list architectures nvcc 13 rejects).
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' ')
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$cap}"
echo "gpu_check: compute capability $cap, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"

start=$(date +%s)
./scripts/setup.sh
GAFT_BUILD_DIR=build-gpu ./scripts/build.sh -DGAFT_CUDA=ON "-DTORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
echo "gpu_check: built in $(( $(date +%s) - start )) s"

echo "== CUDA parity tests"
./build-gpu/tests/test_ops --gtest_filter='Cuda*' --gtest_brief=1

echo "== Timings (median of CUDA-event runs)"
./build-gpu/bench_ops --device cuda --iters 20 --tokens 8192 --hidden 4096 --vocab 128256
echo "== LoRA + activation checkpointing + bf16 autocast, 10 training steps on the GPU (stories260K)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '{"prompt": "Once upon a time", "response": "there was a little girl."}' \
  '{"prompt": "The dog", "response": "ran to the park."}' > "$tmp/train.jsonl"
cat > "$tmp/lora.yaml" <<EOF
run: {output_dir: $tmp/run, device: cuda, seed: 1}
model: {path: ../shared/models/stories260K/hf, gradient_checkpointing: true}
lora: {enabled: true, rank: 4, alpha: 8}
data: {train: $tmp/train.jsonl, max_prompt_tokens: 32, max_response_tokens: 32}
tokenizer: {max_length: 64}
objective: {kind: sft}
train: {batch_size: 2, max_steps: 10}
optimizer: {lr: 0.01}
precision: {compute: bfloat16}
logging: {every_steps: 5, progress: off}
EOF
./build-gpu/gaft train --config "$tmp/lora.yaml"
test -f "$tmp/run/model/adapter_model.safetensors"
echo "== gaft objective on the GPU: shared-prompt rollouts, inverse-CDF sampling, shared-prompt LM-judge scoring,"
echo "   fused AdamW, bf16; host reads per step (docs/benchmarks.md lists S + 3M + 1 after the first epoch)"
cat > "$tmp/gaft.yaml" <<EOF
run: {output_dir: $tmp/gaft, device: cuda, seed: 1}
model: {path: ../shared/models/stories260K/hf}
scorer: {heads: [{name: judge, kind: lm_judge, path: ../shared/models/stories260K/hf, safe_token: happy, unsafe_token: was, prompt_template: "Q: {prompt} A: {response} Is it good? Answer:"}]}
rollout: {num_samples: 4, max_new_tokens: 16, temperature: 1.0}
data: {train: $tmp/train.jsonl, max_prompt_tokens: 32, max_response_tokens: 32, shuffle: false}
tokenizer: {max_length: 64}
objective: {kind: gaft}
train: {batch_size: 1, grad_accum_steps: 2, max_steps: 6}
optimizer: {lr: 0.001}
precision: {compute: bfloat16}
logging: {every_steps: 1, progress: off}
EOF
./build-gpu/gaft train --config "$tmp/gaft.yaml"
# One line per step: step, seconds, rollout share, sampling steps, host reads.
grep -o '"decode_steps":[0-9]*\|"host_syncs":[0-9]*\|"rollout_share":[0-9.e-]*\|"step":[0-9]*\|"step_s":[0-9.e-]*' \
  "$tmp/gaft/metrics.jsonl" | paste -sd' ' | sed 's/ "decode_steps"/\n"decode_steps"/g'
echo "== distributed.sharding on the GPU, world size 1 (the sharded code path: flat buckets, backward hooks, fused"
echo "   AdamW on the slices; one GPU cannot hold two NCCL ranks): full fine-tuning, 4 steps, against unsharded"
for level in none gradients; do
  ./build-gpu/gaft train --config "$tmp/lora.yaml" run.output_dir="$tmp/shard-$level" lora.enabled=false \
    train.max_steps=4 train.grad_accum_steps=2 optimizer.grad_clip=0 distributed.sharding=$level > "$tmp/shard-$level.log" 2>&1 ||
    { cat "$tmp/shard-$level.log"; exit 1; }
done
grep -o 'sharding: .*' "$tmp/shard-gradients.log"
if cmp -s "$tmp/shard-none/model/model.safetensors" "$tmp/shard-gradients/model/model.safetensors"; then
  echo "sharded = unsharded: bitwise (as on the CPU)"
else
  echo "sharded != unsharded bitwise (on the CPU they are equal; the CUDA fused kernel may group elements differently)"
fi
echo
echo "gpu_check: done in $(( $(date +%s) - start )) s"
