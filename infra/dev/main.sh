#!/usr/bin/env bash
# The main job: build everything, start the all-in-one local cluster (Redis, registry, frontend,
# two workers, dashboard), build examples/multi-stage for linux/amd64 and linux/arm64 on it and
# push the multi-arch image to the cluster's registry. The cluster keeps running afterwards;
# stop it with `npx buildyard down`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export TURBO_TELEMETRY_DISABLED=1
state_dir=${BUILDYARD_CLUSTER_DIR:-/var/lib/buildyard/cluster}

npm run build --silent
cluster=$(apps/cli/bin/buildyard up --workers 2 --state-dir "$state_dir" --json)
registry=$(node -e 'console.log(JSON.parse(process.argv[1]).registry)' "$cluster")
dashboard=$(node -e 'console.log(JSON.parse(process.argv[1]).dashboardUrl)' "$cluster")
image="$registry/buildyard/example:latest"

apps/cli/bin/buildyard build \
  --platform linux/amd64,linux/arm64 \
  --build-arg "BASE=$registry/library/busybox:latest" \
  --metadata-file "$state_dir/example-metadata.json" \
  -t "$image" --push \
  examples/multi-stage

echo
echo "pushed $image:"
apps/cli/bin/buildyard imagetools inspect "$image"
echo
echo "dashboard: $dashboard"
echo "stop the cluster with: npx buildyard down --state-dir $state_dir"
