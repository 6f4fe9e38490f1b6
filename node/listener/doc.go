// Package listener adapts the transports MQTT runs over to the net.Conn the broker
// serves: TLS with certificates that reload without a restart, and WebSocket (and
// WebSocket over TLS) on an HTTP path. It knows nothing of MQTT itself.
package listener
