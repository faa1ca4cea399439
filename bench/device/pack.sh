#!/bin/bash
# Makes .gpu/, what the GPU check carries to a device machine, which reaches no registry: this
# machine's node binary (an official build: needs only glibc), node_modules pruned to what
# dist/bench/backends.js loads plus Dawn (`webgpu`) and TF.js's webgpu backend, and Debian's Vulkan
# loader and GL dispatch libraries. About 35 MB, under the 64 MiB a call carries with the tree and dist.
# Run from the repository root after `npm ci` and `npm run build`; .gpu/ must be in .git/info/exclude.
set -euo pipefail
webgpu=webgpu@0.6.2
tfjs_webgpu=@tensorflow/tfjs-backend-webgpu@4.22.0  # the version of the project's @tensorflow/tfjs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf .gpu && mkdir -p .gpu/gl
xz -T0 -9 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
# Runtime packages only: no Kafka client (the bench loads none), compiler, types or test containers;
# of TF.js's packages only the Node entry points and the wasm binaries.
tar cf - --exclude='*.map' --exclude=node_modules/node-rdkafka --exclude=node_modules/typescript \
  --exclude=node_modules/@types --exclude=node_modules/testcontainers --exclude=node_modules/@testcontainers \
  --exclude=node_modules/ssh2 --exclude=node_modules/cpu-features --exclude=node_modules/@grpc \
  --exclude=node_modules/protobufjs --exclude=node_modules/core-js --exclude=node_modules/.cache node_modules | tar xf - -C "$work"
(cd "$work" && npm pack --silent "$webgpu" "$tfjs_webgpu" >/dev/null)
mkdir -p "$work/node_modules/webgpu/dist" "$work/node_modules/@tensorflow/tfjs-backend-webgpu"
tar xzf "$work"/webgpu-*.tgz -C "$work/node_modules/webgpu" --strip-components=1 package/index.js package/package.json package/dist/linux-x64
tar xzf "$work"/tensorflow-tfjs-backend-webgpu-*.tgz -C "$work/node_modules/@tensorflow/tfjs-backend-webgpu" --strip-components=1 package/package.json package/dist/tf-backend-webgpu.node.js
find "$work/node_modules/@tensorflow" -path '*/dist/*' -type f ! -name '*.node.js' ! -name '*.wasm' -delete
(cd "$work" && tar cf - node_modules | xz -T0 -6 > "$OLDPWD/.gpu/nm.tar.xz")
# Debian's builds run on the device's image; apt's lists go to a scratch folder, not the system's.
mkdir -p "$work/lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$work/lists")
apt-get "${o[@]}" update >/dev/null
(cd .gpu/gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)
du -sh .gpu
