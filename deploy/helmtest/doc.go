// Package helmtest checks the Helm chart in helm/skein: its tests render the chart
// with `helm template` for each values file in helm/skein/ci and decode every
// manifest strictly into the Kubernetes API types (an unknown or misplaced field
// is an error), then check what the cluster depends on: the join address, the
// bootstrap size, probes, volumes, anti-affinity, the non-root security context,
// and that every rendered `skein serve` flag exists.
//
// The helm binary comes from $SKEIN_HELM, or is built once with `go install` into
// the user cache directory (skein/helm-VERSION); the tests skip, saying why, when
// it cannot be had (no network for the first build, or -short without a cached
// binary). scripts/helm-check.sh builds the same binary and also runs helm lint.
//
// The package has no non-test code.
package helmtest
