package feed

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/misptrust/misp-trust-operator/misp/misptest/zmqpub"
)

// BenchmarkSubscriberThroughput measures one message end to end: zmqpub PUB →
// TCP → zmq4 SUB → guardConn → Parse → queue → consumer, for the row "add"
// message MISP sends for every synchronised event. ns/op is per message.
func BenchmarkSubscriberThroughput(b *testing.B) {
	p, err := zmqpub.New(zmqpub.Options{HeartbeatEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	sub, err := New(Options{Endpoint: p.Endpoint(), Logger: logr.Discard(), QueueSize: 8192})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = sub.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, eventually)
	defer wcancel()
	if err := p.WaitSubscribed(wctx, "misp_json_event", 1); err != nil {
		b.Fatal(err)
	}
	topic, payload, _ := strings.Cut(string(readFrame(b, "event_add_pulled_row")), " ")
	body := []byte(payload)

	received := make(chan int)
	go func() {
		n := 0
		for range sub.Messages() {
			n++
			if n == b.N {
				received <- n
			}
		}
	}()
	b.SetBytes(int64(len(topic) + 1 + len(body)))
	b.ResetTimer()
	start := time.Now()
	// zmqpub drops for a subscriber more than 1000 frames behind (libzmq's
	// SNDHWM): publish in windows of 500.
	for i := 0; i < b.N; i++ {
		if i%500 == 0 {
			for sub.State().Messages+500 < uint64(i) {
				time.Sleep(50 * time.Microsecond)
			}
		}
		if err := p.Publish(topic, body); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-received:
	case <-time.After(eventually):
		b.Fatalf("received %d of %d; state %+v", sub.State().Delivered, b.N, sub.State())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if st := sub.State(); st.Dropped != 0 || st.ParseErrors != 0 {
		b.Fatalf("lossy run: %+v", st)
	}
}
