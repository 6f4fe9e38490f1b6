#!/usr/bin/env bash
# Checks the Helm chart in helm/skein: helm lint --strict and helm template with the
# default values, with replicas=5 + TLS + ServiceMonitor, and with every values file
# in helm/skein/ci; values the chart must refuse; then the strict manifest test
# (go test ./deploy/helmtest), which decodes every rendered manifest into the
# Kubernetes API types.
#
#   scripts/helm-check.sh
#
# helm: $SKEIN_HELM if set, else helm HELM_VERSION built once with `go install`
# into ${XDG_CACHE_HOME:-~/.cache}/skein/helm-HELM_VERSION (the first build
# downloads its modules from the Go module proxy and takes a few minutes). The
# version must match helmVersion in deploy/helmtest/chart_test.go.
#
# Prints a PASS or FAIL line per check and exits 1 after any FAIL.
set -uo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
CHART=helm/skein
failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

if [ -n "${SKEIN_HELM:-}" ]; then
	HELM=$SKEIN_HELM
else
	dir="${XDG_CACHE_HOME:-$HOME/.cache}/skein/helm-$HELM_VERSION"
	HELM="$dir/helm"
	if [ ! -x "$HELM" ]; then
		echo "building helm $HELM_VERSION into $dir (once)"
		mkdir -p "$dir"
		tmp=$(mktemp -d "$dir/build-XXXXXX")
		# outside this module, so go.mod is not consulted
		if ! (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false \
			go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"); then
			rm -rf "$tmp"
			echo "FAIL: cannot build helm $HELM_VERSION (go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION)"
			exit 1
		fi
		mv "$tmp/helm" "$HELM"
		rm -rf "$tmp"
	fi
fi
echo "helm: $HELM ($("$HELM" version --short 2>/dev/null))"
export SKEIN_HELM=$HELM

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# check NAME HELM-ARGS...: lint and template with the same values.
check() {
	local name=$1
	shift
	if "$HELM" lint --strict "$CHART" "$@" >"$out/lint" 2>&1; then
		pass "helm lint --strict ($name)"
	else
		cat "$out/lint"
		fail "helm lint --strict ($name)"
	fi
	if "$HELM" template skein "$CHART" --namespace skein "$@" >"$out/$name.yaml" 2>"$out/err"; then
		pass "helm template ($name): $(grep -c '^kind:' "$out/$name.yaml") manifests ($(grep '^kind:' "$out/$name.yaml" | awk '{print $2}' | sort | tr '\n' ' '))"
	else
		cat "$out/err"
		fail "helm template ($name)"
	fi
}

check defaults
check replicas5-tls-servicemonitor \
	--set replicaCount=5 \
	--set tls.enabled=true --set tls.existingSecret=skein-tls \
	--set metrics.serviceMonitor.enabled=true
for f in "$CHART"/ci/*-values.yaml; do
	check "$(basename "$f" .yaml)" --values "$f"
done

# refuse NAME MESSAGE HELM-ARGS...: the chart must refuse these values, saying so.
refuse() {
	local name=$1 msg=$2
	shift 2
	if "$HELM" template skein "$CHART" "$@" >/dev/null 2>"$out/err"; then
		fail "helm template accepted $name"
	elif grep -q "$msg" "$out/err"; then
		pass "helm template refuses $name"
	else
		cat "$out/err"
		fail "helm template refuses $name, but not with \"$msg\""
	fi
}
refuse "tls.enabled without tls.existingSecret" "tls.enabled needs tls.existingSecret" --set tls.enabled=true
refuse "cluster.maxVoters=4" "cluster.maxVoters must be 1, 3 or 5" --set cluster.maxVoters=4

if go test -count=1 ./deploy/helmtest/; then
	pass "go test ./deploy/helmtest (strict decoding into Kubernetes API types)"
else
	fail "go test ./deploy/helmtest"
fi

if [ "$failures" -gt 0 ]; then
	echo "helm-check: $failures check(s) FAILED"
	exit 1
fi
echo "helm-check: all checks passed"
