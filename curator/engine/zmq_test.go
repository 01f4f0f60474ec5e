package engine

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/feed"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// TestOverZeroMQ wires the engine to the feed's Subscriber on the double's real ZeroMQ
// publisher: a pull and a push arrive as MISP sends them and are curated.
func TestOverZeroMQ(t *testing.T) {
	ev := newEnv(t, envConfig{server: misptest.Options{ZMQ: true, HeartbeatEvery: -1},
		opts: func(o *Options) { o.PushDebounce = 300 * time.Millisecond; o.CoalesceWindow = 50 * time.Millisecond }})
	sub, err := feed.New(feed.Options{Instance: "sec/misp", Endpoint: ev.srv.ZMQEndpoint()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sub.Run(ctx)
	}()
	go func() {
		for m := range sub.Messages() {
			ev.eng.HandleMessage(m)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(context.Background(), eventually)
	defer wcancel()
	if err := ev.srv.WaitZMQSubscribers(wctx, "misp_json_event", 1); err != nil {
		t.Fatal(err)
	}

	pulled := ev.srv.SimulatePull(partnerEvent(orgHigh, true, tlpGreen, incompleteTag))
	o := ev.outcome()
	if o.EventUUID != pulled.UUID || o.Source != SourcePull || o.Err != nil || o.Calls != 3 || !o.Published {
		t.Fatalf("pull outcome %+v", o)
	}
	pushed := ev.srv.SimulatePush(partnerEvent(orgMedium, true, tlpGreen))
	o = ev.outcome()
	if o.EventUUID != pushed.UUID || o.Source != SourcePush || o.Err != nil || o.Calls != 1 || !o.Tagged {
		t.Fatalf("push outcome %+v", o)
	}
	for uuid, want := range map[string][]string{pulled.UUID: curatedHigh, pushed.UUID: {gradeC + " local", "tlp:green global"}} {
		if got, _ := ev.srv.Event(uuid); !reflect.DeepEqual(tagState(got), want) {
			t.Errorf("event %s tags %q, want %q", uuid, tagState(got), want)
		}
	}
}
