// Package metrics exposes a node's counters to Prometheus. Its Collector reads the
// broker's atomic counters and session figures when Prometheus scrapes, so the
// message path makes no Prometheus calls at all; cluster figures come through the
// ClusterSource interface, which the cluster package implements and cmd plugs in.
//
// metrics imports node and session, and never cluster: node must not import
// metrics either, so the broker knows nothing of Prometheus.
package metrics
