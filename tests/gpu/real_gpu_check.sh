#!/usr/bin/env bash
# Real-GPU check for prometheus-stack's GPU watch (not part of CI).
#
# Usage (repository root, on a machine with the NVIDIA driver; root not required):
#     tests/gpu/real_gpu_check.sh            # builds with `cargo build --release`
#     PSTACK_BIN=/path/to/prometheus-stack tests/gpu/real_gpu_check.sh   # skip the build
#
# What it does:
#   1. starts the daemon with a throwaway config (data in a temp dir, control socket there,
#      /metrics on 127.0.0.1:${PSTACK_METRICS_PORT:-22464}, [gpu] interval 1s);
#   2. one unit, `gpu-alloc`, allocates 1 GiB on GPU 0 through the CUDA driver API
#      (python3 + ctypes on libcuda.so.1, which every driver install ships; falls back to
#      torch when present) and sleeps;
#   3. prints `nvidia-smi` (for comparison), `prometheus-stack gpu`, `status`, and the GPU
#      lines of /metrics;
#   4. checks that at least 1 GiB is attributed to the unit `gpu-alloc` and that the
#      DCGM-named series exist; exits 1 with the reason otherwise.
# Everything it starts is stopped at the end (SIGTERM to the daemon stops its units).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -z "${PSTACK_BIN:-}" ]]; then
    cargo build --release --quiet
    PSTACK_BIN="$PWD/target/release/prometheus-stack"
fi
PORT="${PSTACK_METRICS_PORT:-22464}"
WORK="$(mktemp -d /tmp/pstack-gpu-check.XXXXXX)"
DAEMON_PID=""
cleanup() {
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    echo "== daemon log (last 30 lines)"
    tail -n 30 "$WORK/daemon.log" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/alloc.py" <<'PY'
import ctypes, sys, time
GIB = 1 << 30
try:
    cuda = ctypes.CDLL("libcuda.so.1")
    def ck(r, what):
        if r != 0:
            raise RuntimeError(f"{what} failed: CUresult {r}")
    ck(cuda.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    ck(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
    ctx = ctypes.c_void_p()
    ck(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
    ck(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    ptr = ctypes.c_uint64()
    ck(cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(GIB)), "cuMemAlloc_v2")
    how = "CUDA driver API (libcuda.so.1)"
except Exception as e:
    print(f"libcuda route failed ({e}); trying torch", flush=True)
    import torch
    keep = torch.empty(GIB, dtype=torch.uint8, device="cuda:0")
    how = "torch"
print(f"allocated 1 GiB on GPU 0 via {how}", flush=True)
time.sleep(3600)
PY

cat >"$WORK/stack.toml" <<TOML
[stack]
name = "gpucheck"
data_dir = "$WORK/data"
runtime_dir = "$WORK/run"

[control]
socket = "$WORK/control.sock"

[gpu]
enabled = "on"
interval = "1s"
alert_used_percent = 90

[metrics]
listen = "127.0.0.1:$PORT"

[services.gpu-alloc]
command = ["python3", "-u", "$WORK/alloc.py"]
gpu = { min_free = "1GiB", max_used = "8GiB", grace = "1m" }

[services.idle]
command = ["sleep", "3600"]
TOML

PS() { "$PSTACK_BIN" --config "$WORK/stack.toml" "$@"; }

echo "== binary: $PSTACK_BIN"
PS check
# The binary itself in the background (not the PS function: $! would be a subshell).
"$PSTACK_BIN" --config "$WORK/stack.toml" run >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do [[ -S "$WORK/control.sock" ]] && break; sleep 0.2; done
[[ -S "$WORK/control.sock" ]] || { echo "FAIL: daemon did not open its control socket"; exit 1; }

# Wait until the allocation shows up attributed to its unit (CUDA init can take seconds).
attributed=0
for _ in $(seq 60); do
    if PS status --json | grep -q '"state": *"failed"'; then break; fi
    if PS gpu --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
u = [u for u in s.get("units", []) if u["unit"] == "gpu-alloc"]
sys.exit(0 if u and u[0]["used_bytes"] >= (1 << 30) else 1)'; then
        attributed=1
        break
    fi
    sleep 1
done

if command -v nvidia-smi >/dev/null; then
    echo "== nvidia-smi"
    nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.used,memory.free --format=csv || true
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv || true
fi
echo "== prometheus-stack gpu"
PS gpu
echo "== prometheus-stack status"
PS status
echo "== /metrics (GPU and unit lines)"
curl -fsS "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics.txt"
grep -E '^(DCGM_|prometheus_stack_(gpu|unit_gpu))' "$WORK/metrics.txt" | grep -v '^#' || true

status=0
if [[ $attributed -ne 1 ]]; then
    echo "FAIL: 1 GiB not attributed to unit gpu-alloc within 60s (see the gpu-alloc log below)"
    PS logs -n 20 gpu-alloc || true
    status=1
fi
for m in DCGM_FI_DEV_FB_USED DCGM_FI_DEV_FB_FREE prometheus_stack_unit_gpu_memory_used_bytes; do
    grep -q "^$m{" "$WORK/metrics.txt" || { echo "FAIL: /metrics lacks $m"; status=1; }
done
grep -q '^prometheus_stack_unit_gpu_memory_used_bytes{unit="gpu-alloc"' "$WORK/metrics.txt" \
    || { echo "FAIL: no per-unit GPU series for gpu-alloc"; status=1; }
[[ $status -eq 0 ]] && echo "PASS: GPU readings, attribution to gpu-alloc and DCGM-named metrics"
exit $status
