package cluster_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/skein-mq/skein/cluster/clustertest"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// grpc-go and memberlist leave short-lived goroutines finishing after Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestCrossNodePubSub: a subscriber on n3 receives what is published on n1, at each
// QoS, once its route reached n1 (promise 1 of DESIGN.md).
func TestCrossNodePubSub(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: skipped with -short")
	}
	nodes := clustertest.Start(t, 3)
	for qos := byte(0); qos <= 2; qos++ {
		t.Run("qos"+string('0'+qos), func(t *testing.T) {
			topic := "x/" + string('0'+qos)
			sub := nodetest.Connect(t, nodes[2].Addr, proto.V5, "sub"+topic)
			sub.Subscribe(1, qos, "x/+")
			clustertest.WaitRoute(t, nodes, "x/+", "n3", "", true)
			pub := nodetest.Connect(t, nodes[0].Addr, proto.V311, "pub"+topic)
			if code := pub.Publish(&proto.Publish{Topic: topic, QoS: qos, PacketID: 1, Payload: []byte("hello")}); qos > 0 && code != 0 {
				t.Fatalf("ack code %v", code)
			}
			got := sub.ExpectPublish(topic, "hello")
			if got.QoS != qos {
				t.Fatalf("delivered at qos %d, want %d", got.QoS, qos)
			}
			sub.Disconnect()
			clustertest.WaitRoute(t, nodes, "x/+", "n3", "", false)
		})
	}
}
