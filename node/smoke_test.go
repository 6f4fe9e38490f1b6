package node_test

import (
	"testing"

	"github.com/skein-mq/skein/node"
	"github.com/skein-mq/skein/node/nodetest"
	"github.com/skein-mq/skein/proto"
)

func TestPublishSubscribeEachQoS(t *testing.T) {
	for _, v := range []proto.Version{proto.V31, proto.V311, proto.V5} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(v.String()+"/qos"+string('0'+qos), func(t *testing.T) {
				b := nodetest.Start(t, node.DefaultConfig())
				sub := nodetest.Connect(t, b.Addr, v, "sub")
				if codes := sub.Subscribe(1, qos, "a/+"); codes[0] != proto.ReasonCode(qos) {
					t.Fatalf("granted %v, want %d", codes, qos)
				}
				pub := nodetest.Connect(t, b.Addr, v, "pub")
				pub.Publish(&proto.Publish{Topic: "a/b", QoS: qos, PacketID: 7, Payload: []byte("hi")})
				got := sub.ExpectPublish("a/b", "hi")
				if got.QoS != qos || got.Retain {
					t.Fatalf("delivered qos %d retain %v, want qos %d retain false", got.QoS, got.Retain, qos)
				}
			})
		}
	}
}
