#!/usr/bin/env bash
# The tools the deploy/ checks need (tests/deploy), pinned and installed idempotently from the
# package registries only (Go module proxy, Maven Central, PyPI), cached under
# $STOREOPS_CACHE/k8s-tools (default ~/.cache/storeops/k8s-tools), never in the repo.
#
#   scripts/k8s_tools.sh            install whatever is missing (about 0.1 s when all is there)
#   scripts/k8s_tools.sh versions   print the pinned versions
#   scripts/k8s_tools.sh dir        print the tool directory (what tests/deploy reads)
#
# What lands in the tool directory:
#   promtool                 Prometheus' promtool, built from the module source with the Go
#                            toolchain (-tags remove_all_sd: no service-discovery plugins, which
#                            promtool's rule checks and tests do not use; a third of the build)
#   venv/bin/python          a venv with kubernetes-validate (it bundles the Kubernetes JSON
#                            schemas, so strict validation needs no network)
#   crds/*.yaml              the operators' own CustomResourceDefinitions: CloudNativePG,
#                            KEDA, Prometheus Operator (from their Go modules), Strimzi (from the
#                            test jar of io.strimzi:api on Maven Central, which carries them)
#   VERSIONS                 the versions installed (the stamp that makes reruns no-ops)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STOREOPS_CACHE="${STOREOPS_CACHE:-$HOME/.cache/storeops}"
TOOLS="$STOREOPS_CACHE/k8s-tools"
GO="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
UV="${UV:-$(command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv")}"

PROMETHEUS_MODULE_VERSION=v0.313.5 # Prometheus 3.13.5 (Go module versions are v0.3MM.P)
PROMETHEUS_VERSION=3.13.5
KUBERNETES_VALIDATE_VERSION=1.37.0
CNPG_VERSION=v1.27.1
KEDA_VERSION=v2.21.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
STRIMZI_VERSION=0.51.0
MAVEN_DEPENDENCY_PLUGIN=3.8.1

STAMP="promtool=$PROMETHEUS_VERSION kubernetes-validate=$KUBERNETES_VALIDATE_VERSION cnpg=$CNPG_VERSION keda=$KEDA_VERSION prometheus-operator=$PROMETHEUS_OPERATOR_VERSION strimzi=$STRIMZI_VERSION"

log() { printf '[k8s-tools] %s\n' "$*" >&2; }
die() { printf '[k8s-tools] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

case "${1:-install}" in
  versions) echo "$STAMP"; exit 0 ;;
  dir) echo "$TOOLS"; exit 0 ;;
  install) ;;
  *) die "usage: $0 [install|versions|dir]" ;;
esac

if [[ -f "$TOOLS/VERSIONS" && "$(cat "$TOOLS/VERSIONS")" == "$STAMP" && -x "$TOOLS/promtool" \
  && -x "$TOOLS/venv/bin/python" ]]; then
  exit 0
fi

mkdir -p "$TOOLS/crds"
exec 9>"$TOOLS/.lock"
flock 9
rm -f "$TOOLS/VERSIONS"
total_start="$(now)"

# Go: module cache and build cache of our own, so that a clean cache means clean.
export GOMODCACHE="$STOREOPS_CACHE/go/mod" GOCACHE="$STOREOPS_CACHE/go/build"
export GOFLAGS=-modcacherw GOWORK=off GOTOOLCHAIN=local
[[ -x "$GO" ]] || die "Go toolchain not found (looked for go on PATH and /usr/local/go/bin/go)"

module_dir() { # module@version -> its directory in the module cache (downloads it)
  "$GO" mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or ""); sys.exit(1 if d.get("Error") else 0)'
}

# ---------------------------------------------------------------------------------------------
# promtool. `go install …/cmd/promtool@version` is refused (Prometheus' go.mod has replace
# directives), so it is built inside a copy of the module, where go.mod applies as written.
if ! [[ -x "$TOOLS/promtool" ]] || ! "$TOOLS/promtool" --version 2>&1 | grep -q "version $PROMETHEUS_VERSION"; then
  t="$(now)"
  log "building promtool $PROMETHEUS_VERSION (Go module $PROMETHEUS_MODULE_VERSION; several minutes on 2 cores)"
  src="$(module_dir "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION")" \
    || die "cannot download github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION"
  build="$(mktemp -d "$STOREOPS_CACHE/promtool-build.XXXXXX")"
  trap 'rm -rf "$build"' EXIT
  cp -r "$src/." "$build/"
  chmod -R u+w "$build"
  (cd "$build" && "$GO" build -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    -o "$TOOLS/promtool.new" ./cmd/promtool) || die "promtool build failed"
  mv "$TOOLS/promtool.new" "$TOOLS/promtool"
  rm -rf "$build"
  trap - EXIT
  log "promtool built in $(elapsed "$t") s"
fi

# ---------------------------------------------------------------------------------------------
# kubernetes-validate in a venv of its own (not a project dependency: only these checks use it).
if ! [[ -x "$TOOLS/venv/bin/python" ]] \
  || ! "$TOOLS/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  t="$(now)"
  [[ -x "$UV" ]] || die "uv not found (make install puts it in ~/.local/bin)"
  rm -rf "$TOOLS/venv"
  "$UV" venv --quiet --python python3 "$TOOLS/venv"
  "$UV" pip install --quiet --python "$TOOLS/venv/bin/python" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || die "kubernetes-validate install failed"
  log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION installed in $(elapsed "$t") s"
fi

# ---------------------------------------------------------------------------------------------
# CRDs of the Go operators, from their modules.
t="$(now)"
copy_crds() { # module@version subdir file...
  local dir
  dir="$(module_dir "$1")" || die "cannot download $1"
  shift
  local sub="$1"
  shift
  for f in "$@"; do
    [[ -f "$dir/$sub/$f" ]] || die "$f not in $dir/$sub"
    cp "$dir/$sub/$f" "$TOOLS/crds/$f"
    chmod u+w "$TOOLS/crds/$f"
  done
}
copy_crds "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION" config/crd/bases \
  postgresql.cnpg.io_clusters.yaml postgresql.cnpg.io_databases.yaml \
  postgresql.cnpg.io_scheduledbackups.yaml
copy_crds "github.com/kedacore/keda/v2@$KEDA_VERSION" config/crd/bases \
  keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml
copy_crds "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd \
  monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml
log "CNPG, KEDA and Prometheus Operator CRDs in $(elapsed "$t") s"

# Strimzi is Java: its CRDs (the ones its build writes to packaging/install/cluster-operator/
# 04x-Crd-*.yaml) ship in the test jar of io.strimzi:api on Maven Central, under crds/v1/.
t="$(now)"
SJAR="$STOREOPS_CACHE/strimzi-api-$STRIMZI_VERSION-tests.jar"
if ! [[ -s "$SJAR" ]]; then
  sdir="$(mktemp -d)"
  mvn -B -q -U "org.apache.maven.plugins:maven-dependency-plugin:$MAVEN_DEPENDENCY_PLUGIN:copy" \
    "-Dartifact=io.strimzi:api:$STRIMZI_VERSION:jar:tests" "-DoutputDirectory=$sdir" \
    >"$STOREOPS_CACHE/strimzi-api.mvn.log" 2>&1 \
    || { tail -n 30 "$STOREOPS_CACHE/strimzi-api.mvn.log" >&2; die "io.strimzi:api:$STRIMZI_VERSION:tests download failed"; }
  mv "$sdir/api-$STRIMZI_VERSION-tests.jar" "$SJAR"
  rm -rf "$sdir"
fi
for f in 040-Crd-kafka.yaml 043-Crd-kafkatopic.yaml 045-Crd-kafkanodepool.yaml; do
  unzip -p "$SJAR" "crds/v1/$f" >"$TOOLS/crds/$f" || die "crds/v1/$f not in $SJAR"
done
log "Strimzi CRDs in $(elapsed "$t") s"

echo "$STAMP" >"$TOOLS/VERSIONS"
log "ready in $(elapsed "$total_start") s: $STAMP"
