package zmqpub

import (
	"context"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/null"
	"github.com/go-zeromq/zmq4/security/plain"
)

// TestZmq4SubscriberAcrossRestart pins down what a zmq4 v0.17.0 SUB using
// its own WithAutomaticReconnect does when the publisher restarts: the
// caveat the curator's redial loop exists for (design.md, failure model).
// If a zmq4 upgrade changes this, this test says so.
//
//   - NULL: Recv returns io.EOF once, zmq4 redials, resends its
//     subscriptions, and messages flow again.
//   - PLAIN: Recv returns io.EOF once; the redial reuses the plain.Security
//     value, which dropped its credentials after the first handshake
//     (security/plain: sec.user = nil; sec.pass = nil), so it sends empty
//     ones. The publisher refuses them, as a real libzmq ZAP server does,
//     and zmq4 gives up without telling: no further error, no further
//     message, no further attempt.
func TestZmq4SubscriberAcrossRestart(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		sec        zmq4.Security // one value for the socket's whole life, as zmq4 intends
		wantResume bool
	}{
		{"NULL resumes after EOF", Options{}, null.Security(), true},
		{"PLAIN goes quiet after EOF", Options{User: "misp", Password: "zmq-s3cret"}, plain.Security("misp", "zmq-s3cret"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newTestPublisher(t, tt.opts, defaultLimits())
			ctx, cancel := context.WithCancel(context.Background())
			sock := zmq4.NewSub(ctx, zmq4.WithSecurity(tt.sec), zmq4.WithAutomaticReconnect(true))
			if err := sock.Dial(p.Endpoint()); err != nil {
				t.Fatal(err)
			}
			sub := startTestSub(t, sock, cancel)
			if err := sock.SetOption(zmq4.OptionSubscribe, "misp_json"); err != nil {
				t.Fatal(err)
			}
			waitSubscribed(t, p, "misp_json", 1)
			if err := p.Publish("misp_json", []byte("before")); err != nil {
				t.Fatal(err)
			}
			if got := string(sub.next(t).Frames[0]); got != "misp_json before" {
				t.Fatalf("got %q", got)
			}

			if err := p.Restart(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-sub.errs:
				t.Logf("zmq4 Recv after the restart: %v", err)
			case <-time.After(eventually):
				t.Fatal("zmq4 Recv reported nothing after the restart")
			}

			if tt.wantResume {
				waitSubscribed(t, p, "misp_json", 1)
				if err := p.Publish("misp_json", []byte("after")); err != nil {
					t.Fatal(err)
				}
				if got := string(sub.next(t).Frames[0]); got != "misp_json after" {
					t.Fatalf("got %q", got)
				}
				return
			}
			waitFor(t, "the redial with forgotten credentials to be refused", func() bool { return p.Stats().AuthFailures > 0 })
			for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); { // half a second of traffic
				if err := p.Publish("misp_json", []byte("after")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case m := <-sub.msgs:
				t.Fatalf("zmq4 received %q after its redial was refused", m.Frames)
			case err := <-sub.errs:
				t.Fatalf("zmq4 reported a second error %v; the caveat changed", err)
			default:
			}
			if st := p.Stats(); st.AuthFailures != 1 || st.Subscribers != 0 {
				t.Fatalf("Stats = %+v, want exactly one refused redial and no subscriber", st)
			}
		})
	}
}
