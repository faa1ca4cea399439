#!/bin/bash
# The GPU check on a lent device machine (bench/device/README.md): run from the repository root there,
# carrying .gpu (made by bench/device/pack.sh) and dist. Writes its logs under $OUT.
# Steps by env: DEMO=1 runs the demo (backend auto), TORCH=1 the PyTorch yardstick, PIPELINE=1 the gru
# intent pipeline (gru-intent.yaml) on wasm and on webgpu, timed, with each one's prequential metrics.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
echo "== $(date -u) $(uname -a)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
nproc; grep -m1 "model name" /proc/cpuinfo
echo "== node"
if ! command -v node >/dev/null; then
  mkdir -p /tmp/n && python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open('.gpu/node.xz'), open('/tmp/n/node','wb'))" && chmod +x /tmp/n/node
  export PATH=/tmp/n:$PATH
fi
node --version || exit 1
python3 -c "import tarfile; tarfile.open('.gpu/nm.tar.xz').extractall('.')" || exit 1
echo "== vulkan: loader entries before: $(ldconfig -p | grep -c libvulkan)"
# The loaders and GL dispatch libraries (Debian bookworm), as the device notes say; the driver's ICD.
for f in .gpu/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
echo "loader entries after: $(ldconfig -p | grep -c libvulkan)"
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
for l in /usr/lib/libGLX_nvidia.so.0 $(ls /usr/local/nvidia/lib64/libGLX_nvidia.so* 2>/dev/null); do echo "$l: $(ldd $l 2>&1 | grep -c 'not found') missing"; ldd $l | grep 'not found'; done
echo "== adapter"
timeout 60 node bench/device/adapter.mjs; rc=$?; echo "adapter rc $rc"
if [ $rc -ne 0 ]; then
  VK_LOADER_DEBUG=all timeout 60 node bench/device/adapter.mjs > "$OUT/vk.log" 2>&1
  grep -i "error\|fail\|warn" "$OUT/vk.log" | head -40
  exit 3
fi
for run in $(seq 1 ${BENCH_RUNS:-1}); do
  echo "== bench run $run"
  timeout ${BENCH_TIMEOUT:-300} node --expose-gc dist/bench/backends.js ${BENCH_EVENTS:-100000} --write; echo "bench rc $?"
  cp BENCHMARKS.md "$OUT/BENCHMARKS-run$run.md" 2>/dev/null
done
if [ "${DEMO:-0}" = 1 ]; then
  echo "== demo (backend auto)"
  timeout 90 node --max-semi-space-size=32 dist/core/cli/main.js run pipelines/demo.yaml > "$OUT/demo.out" 2> "$OUT/demo.err"; echo "demo rc $?"
  grep -i "backend" "$OUT/demo.err" | head -3
fi
if [ "${PIPELINE:-0}" = 1 ]; then
  for backend in webgpu wasm; do
    echo "== gru intent pipeline on $backend (batch ${BATCH:-4096}, ${DEMO_EVENTS:-200000} events)"
    start=$(date +%s.%N)  # python3 for the arithmetic: the image may have no bc
    MODEL_BACKEND=$backend OUT_DIR="$OUT" timeout 240 node dist/core/cli/main.js run bench/device/gru-intent.yaml > /dev/null 2> "$OUT/pipeline-$backend.err"
    rc=$?; echo "rc $rc, $(python3 -c "import sys,time; print(round(time.time() - float(sys.argv[1]), 1))" "$start") s wall"
    grep -v '"level":30' "$OUT/pipeline-$backend.err" | head -3
    node -e "const r=JSON.parse(require('fs').readFileSync(process.argv[1],'utf8').trim().split('\n').pop()); console.log(r.backend, JSON.stringify(r.summary))" "$OUT/gru-intent-$backend.jsonl"
  done
fi
if [ "${TORCH:-0}" = 1 ]; then
  echo "== torch yardstick"
  PYTHONUNBUFFERED=1 timeout 90 python3 bench/device/torch_ref.py; echo "torch rc $?"
fi
echo "== $(date -u) done"
