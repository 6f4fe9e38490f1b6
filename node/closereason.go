package node

// closeReason says why a connection ended; every close is logged and counted with one.
type closeReason int

const (
	closeClientDisconnect closeReason = iota // DISCONNECT from the client
	closeEOF                                 // the client closed the socket without DISCONNECT
	closeNetworkError                        // read or write failed
	closeConnectTimeout                      // no CONNECT in time
	closeKeepAlive                           // 1.5 x keepalive of silence
	closeProtocolError                       // malformed packet or protocol violation
	closeTooLarge                            // packet over the maximum size
	closeRefused                             // CONNACK with a failure code
	closeTakenOver                           // another connection took the client id
	closeShutdown                            // the broker is stopping
	closeSlowConsumer                        // the write queue overflowed or writes timed out
	closeKicked                              // an administrator closed it
	numCloseReasons
)

var closeReasonNames = [...]string{
	"client_disconnect", "eof", "network_error", "connect_timeout", "keepalive_timeout",
	"protocol_error", "packet_too_large", "connect_refused", "taken_over", "shutdown",
	"slow_consumer", "kicked",
}

// String returns the reason's label for logs and metrics.
func (r closeReason) String() string { return closeReasonNames[r] }

// CloseReasons lists the labels of the close reasons, in Stats.Closed order.
func CloseReasons() []string { return closeReasonNames[:] }
