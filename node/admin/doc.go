// Package admin is the HTTP admin API of a node, mounted under /api/v1: the node,
// its counters, clients (list, show, kick), subscriptions, routes, retained
// messages (list, show, delete) and publishing. Every answer is JSON; an error is
// {"error": "..."} with the matching status. The API is protected by HTTP basic
// auth, bearer API keys, or both; with neither configured it is open, and the
// address it listens on must then be kept private.
//
// The types of the answers are exported: `skein ctl` decodes them.
//
// admin imports node, session and proto, never cluster; the cluster adds its nodes
// and routes through interfaces of its own when it lands.
package admin
