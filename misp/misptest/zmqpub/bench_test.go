package zmqpub

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// A pulled-event notification, the curator's hot message (misp-api.md §1.7c).
var benchPayload = []byte(`{"Event":"853475bb-cc6b-4e07-b345-ed9e47520557","Server":"1","action":"add_from_connected_server"}`)

// BenchmarkPublish measures the caller's cost of Publish: the frame is only
// queued, so this is what the REST double pays per message.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name string
		subs int
	}{{"no subscriber", 0}, {"1 subscriber", 1}, {"10 subscribers", 10}} {
		subs := bc.subs
		b.Run(bc.name, func(b *testing.B) {
			p, err := New(Options{HeartbeatEvery: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			for range subs {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sock := zmq4.NewSub(ctx)
				defer sock.Close()
				if err := sock.Dial(p.Endpoint()); err != nil {
					b.Fatal(err)
				}
				_ = sock.SetOption(zmq4.OptionSubscribe, "")
				go func() {
					for {
						if _, err := sock.Recv(); err != nil && ctx.Err() != nil {
							return
						}
					}
				}()
			}
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			if err := p.WaitSubscribed(wctx, "misp_json_event", subs); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.Publish("misp_json_event", benchPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDelivery measures end-to-end throughput to one zmq4 SUB: every
// message is received (publishing in windows smaller than the send queue,
// so nothing is dropped). Reported as msgs/s.
func BenchmarkDelivery(b *testing.B) {
	p, err := New(Options{HeartbeatEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := zmq4.NewSub(ctx)
	defer sock.Close()
	if err := sock.Dial(p.Endpoint()); err != nil {
		b.Fatal(err)
	}
	_ = sock.SetOption(zmq4.OptionSubscribe, "misp_json_event")
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitSubscribed(wctx, "misp_json_event", 1); err != nil {
		b.Fatal(err)
	}
	want := append([]byte("misp_json_event "), benchPayload...)
	const window = 500
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for range n {
			if err := p.Publish("misp_json_event", benchPayload); err != nil {
				b.Fatal(err)
			}
		}
		for range n {
			m, err := sock.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(m.Frames[0], want) {
				b.Fatalf("got %q", m.Frames[0])
			}
		}
		sent += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if st := p.Stats(); st.QueueDrops != 0 {
		b.Fatalf("%d messages dropped", st.QueueDrops)
	}
}
