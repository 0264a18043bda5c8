#!/usr/bin/env bash
# Builds the local control plane from Go modules and prints the bin folder.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (one multi-call binary "k8s")
#   etcd                                                              (etcdmain, same module graph)
#   kwok, helm                                                        (tools/, their own module)
#
# Binaries live outside the repo, in $LLMOPS_CACHE (default ~/.cache/llmops), under
# a key hashed from the Go module files and this script: a fresh clone on a machine
# with warm caches reuses them; any change to a pin rebuilds. Progress goes to
# stderr; the last line on stdout is the bin folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1; then
  echo "cluster/build.sh: the Go toolchain is missing ('go' is not on PATH). Install Go >= 1.26 (https://go.dev/doc/install)." >&2
  exit 3
fi
cache=${LLMOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmops}
key=$(cd "$here" && cat build.sh controlplane/go.mod controlplane/go.sum tools/go.mod tools/go.sum \
      $(find controlplane/cmd -name '*.go' | sort) | sha256sum | cut -c1-16)
bin="$cache/cluster/$key/bin"
want=(k8s etcd kwok helm crds/monitoring.coreos.com_podmonitors.yaml crds/gateway.networking.k8s.io_httproutes.yaml)
# Third-party CRDs the operator adapts to when present, taken verbatim from their Go modules.
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
GATEWAY_API=sigs.k8s.io/gateway-api@v1.6.3
have=1; for b in "${want[@]}"; do [ -e "$bin/$b" ] || have=0; done
if [ "$have" = 1 ]; then
  echo "control plane binaries: cached in $bin" >&2
  echo "$bin"; exit 0
fi

kv=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/controlplane/go.mod")
[ -n "$kv" ] || kv=$(cd "$here/controlplane" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
major=${kv#v}; major=${major%%.*}; minor=${kv#v*.}; minor=${minor%%.*}
helmv=$(cd "$here/tools" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
kwokv=$(cd "$here/tools" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Stamp the version as hack/lib/version.sh does, so `kubectl version` and Helm's
# kubeVersion checks see the real version instead of v0.0.0-master.
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$kv -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
done

tmp="$cache/cluster/$key/tmp.$$"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
t0=$(date +%s)
step() { echo "[$1/4] $2 ($(( $(date +%s) - t0 ))s elapsed)" >&2; }
step 1 "downloading modules (Kubernetes $kv, helm $helmv, kwok $kwokv)"
(cd "$here/controlplane" && go mod download) && (cd "$here/tools" && go mod download)
step 2 "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl as one binary (the long step: about 5 min cold on 2 cores)"
(cd "$here/controlplane" && go build -trimpath -ldflags "-s -w $stamp" -o "$tmp/k8s" ./cmd/k8s)
step 3 "building etcd"
(cd "$here/controlplane" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd)
step 4 "building kwok $kwokv and helm $helmv"
(cd "$here/tools" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helmv -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor -X sigs.k8s.io/kwok/pkg/consts.Version=${kwokv#v}" -o "$tmp/" sigs.k8s.io/kwok/cmd/kwok helm.sh/helm/v3/cmd/helm)
for n in kube-apiserver kube-controller-manager kube-scheduler kubectl; do ln -sf k8s "$tmp/$n"; done
echo "      and third-party CRDs ($PROMETHEUS_OPERATOR, $GATEWAY_API)" >&2
mkdir -p "$tmp/crds"
moddir() { (cd "$here/tools" && go mod download -json "$1") | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
po=$(moddir "$PROMETHEUS_OPERATOR"); gw=$(moddir "$GATEWAY_API")
cp "$po"/example/prometheus-operator-crd/monitoring.coreos.com_{podmonitors,prometheusrules,servicemonitors}.yaml "$tmp/crds/"
cp "$gw"/config/crd/standard/gateway.networking.k8s.io_{gatewayclasses,gateways,httproutes,referencegrants}.yaml "$tmp/crds/"
chmod 644 "$tmp"/crds/*
rm -rf "$bin"; mv "$tmp" "$bin"; trap - EXIT
# Older keys are dead weight (each about 400 MB): keep only this one.
find "$cache/cluster" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
echo "built in $(( $(date +%s) - t0 ))s: $bin" >&2
echo "$bin"
