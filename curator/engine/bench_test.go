package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
)

// noMISP fails the benchmark if the engine calls MISP: untrusted events named by the
// feed must cost nothing.
type noMISP struct{ b *testing.B }

func (n noMISP) EventMeta(context.Context, string) (misp.EventMeta, error) {
	n.b.Error("EventMeta called")
	return misp.EventMeta{}, misp.ErrNotFound
}
func (n noMISP) AttachTags(context.Context, string, []string, bool) error {
	n.b.Error("AttachTags called")
	return nil
}
func (n noMISP) RemoveTag(context.Context, string, string) error {
	n.b.Error("RemoveTag called")
	return nil
}
func (n noMISP) Publish(context.Context, string) (string, error) {
	n.b.Error("Publish called")
	return "", nil
}

// BenchmarkUntrustedPull is the hot path of a hub: a pulled event of an untrusted org —
// its row message, then add_from_connected_server — through scheduling, a worker and
// the outcome, with no MISP call. The timed part ends when every outcome is out.
func BenchmarkUntrustedPull(b *testing.B) {
	idx := &index.Index{}
	idx.Store(defaultSnapshot())
	benchUntrustedPulls(b, Options{Index: idx}, func(Outcome) {})
}

// benchUntrustedPulls hands b.N untrusted pulls (row message, then
// add_from_connected_server) to an engine built from opts (two workers, a MISP that
// fails the benchmark when called) and waits for every outcome, each checked by check.
func benchUntrustedPulls(b *testing.B, opts Options, check func(Outcome)) {
	var done atomic.Int64
	opts.MISP, opts.Concurrency, opts.MaxPending = noMISP{b}, 2, b.N+1
	opts.OnOutcome = func(o Outcome) {
		check(o)
		done.Add(1)
	}
	eng := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	row := frame(b, "event_add_pulled_row")
	row.OrgcUUID = orgUntrusted
	pull := frame(b, "event_add_from_server_uuid")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := fmt.Sprintf("5a3c2fcd-8328-42bb-a95e-%012x", i)
		row.EventUUID, pull.EventUUID = u, u
		eng.HandleMessage(row)
		eng.HandleMessage(pull)
	}
	for done.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
}

// BenchmarkHandleMessageHints: the feed messages that only update what the engine knows
// (misp_json and tag messages), which a subscriber hands over at line rate.
func BenchmarkHandleMessageHints(b *testing.B) {
	idx := &index.Index{}
	idx.Store(defaultSnapshot())
	eng := New(Options{Index: idx, MISP: noMISP{b}})
	pub := frame(b, "publish_pulled_local_tags")
	tag := frame(b, "tag_attached_to_event_local")
	b.ReportAllocs()
	for b.Loop() {
		eng.HandleMessage(pub)
		eng.HandleMessage(tag)
	}
}
