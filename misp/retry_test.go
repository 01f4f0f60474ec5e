package misp_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// refuseFirst is a transport whose first round trip fails to connect (nothing was sent).
type refuseFirst struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (r *refuseFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.n.Add(1) == 1 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	}
	return r.next.RoundTrip(req)
}

// TestWritesAreRetriedOnlyWhenProvablyUnsent: a write is sent again only when the attempt
// never reached MISP. A write that committed and then failed (a proxy's 504, a dropped
// connection) is returned once, as an error whose outcome is unknown, instead of being
// sent again: a second publish pushes the event to the partners again, a second removal
// answers 404 and hides that the first one unpublished the event.
func TestWritesAreRetriedOnlyWhenProvablyUnsent(t *testing.T) {
	partner := misptest.Org{UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", Name: "PARTNER-HIGH"}
	incomplete := misptest.EventTag{Name: trust.TagWorkflowIncomplete}
	// Only the first attempt fails: a retry would find the work done.
	for _, fault := range []misptest.Fault{
		{ErrorStatus: http.StatusGatewayTimeout, AfterCommit: true, Times: 1},
		{DropConn: true, AfterCommit: true, Times: 1},
	} {
		name := "504 after commit"
		if fault.DropConn {
			name = "connection dropped after commit"
		}
		t.Run(name, func(t *testing.T) {
			srv := newDouble(t, misptest.Options{})
			c := newClient(t, srv, srv.AdminKey(), func(o *misp.Options) { o.MaxRetries = 4 })
			ctx := context.Background()

			e := srv.AddEvent(misptest.Event{Orgc: partner, Locked: true, Published: true, Attributes: 1, Tags: []misptest.EventTag{incomplete}})
			srv.SetFault("/tags/removeTagFromObject", fault)
			err := c.RemoveTag(ctx, e.UUID, trust.TagWorkflowIncomplete)
			if err == nil || errors.Is(err, misp.ErrNotFound) || !misp.OutcomeUnknown(err) {
				t.Fatalf("removal: err = %v, want an error whose outcome is unknown (not a 404 from a retry)", err)
			}
			if n := srv.Calls("/tags/removeTagFromObject"); n != 1 {
				t.Fatalf("removal sent %d times, want once", n)
			}
			if got, _ := srv.Event(e.UUID); got.Published || len(got.Tags) != 0 {
				t.Fatalf("the double did not commit the removal: %+v", got)
			}

			srv.SetFault("/events/publish", fault)
			_, err = c.Publish(ctx, e.UUID)
			if err == nil || !misp.OutcomeUnknown(err) {
				t.Fatalf("publish: err = %v, want an error whose outcome is unknown", err)
			}
			if n := srv.Calls("/events/publish"); n != 1 {
				t.Fatalf("publish sent %d times, want once", n)
			}
			if got, _ := srv.Event(e.UUID); !got.Published {
				t.Fatal("the double did not commit the publish")
			}

			// Reads are repeatable: the same fault is retried until it succeeds.
			srv.SetFault("/events/index", misptest.Fault{ErrorStatus: http.StatusGatewayTimeout, ErrorRate: 0.3})
			for range 5 {
				if _, err := c.EventMeta(ctx, e.UUID); err != nil {
					t.Fatalf("a read was not retried: %v", err)
				}
			}
		})
	}
	t.Run("connection refused before sending: retried", func(t *testing.T) {
		srv := newDouble(t, misptest.Options{})
		rt := &refuseFirst{next: http.DefaultTransport}
		c := newClient(t, srv, srv.AdminKey(), func(o *misp.Options) { o.Transport = rt })
		e := srv.AddEvent(misptest.Event{Orgc: partner, Locked: true, Attributes: 1})
		if _, err := c.Publish(context.Background(), e.UUID); err != nil {
			t.Fatalf("publish after a refused connection: %v", err)
		}
		if rt.n.Load() != 2 || srv.Calls("/events/publish") != 1 {
			t.Fatalf("%d round trips, %d reached MISP; want 2 and 1", rt.n.Load(), srv.Calls("/events/publish"))
		}
	})
	t.Run("429 with Retry-After: retried; without: returned", func(t *testing.T) {
		srv := newDouble(t, misptest.Options{})
		c := newClient(t, srv, srv.AdminKey())
		e := srv.AddEvent(misptest.Event{Orgc: partner, Locked: true, Attributes: 1})
		// The double's 429 carries MISP's X-Rate-Limit-* headers, no Retry-After.
		srv.SetFault("/events/publish", misptest.Fault{ErrorStatus: http.StatusTooManyRequests})
		_, err := c.Publish(context.Background(), e.UUID)
		if !errors.Is(err, misp.ErrRateLimited) || misp.OutcomeUnknown(err) || srv.Calls("/events/publish") != 1 {
			t.Fatalf("err = %v after %d calls; want ErrRateLimited after one, outcome known", err, srv.Calls("/events/publish"))
		}
	})
}

func TestOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&misp.APIError{Status: 504, Kind: misp.ErrServer}, true},
		{&misp.APIError{Status: 500, Kind: misp.ErrServer}, true},
		{&misp.APIError{Status: 200, Kind: misp.ErrUnexpectedResponse}, true},
		{&misp.APIError{Status: 200, Kind: misp.ErrValidation}, false}, // toggleEnable's saved:false
		{&misp.APIError{Status: 404, Kind: misp.ErrNotFound}, false},
		{&misp.APIError{Status: 429, Kind: misp.ErrRateLimited}, false},
		{&misp.APIError{Status: 302, Kind: misp.ErrUnexpectedResponse}, false},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, false},
		{&net.OpError{Op: "read", Err: errors.New("reset")}, true},
		{context.DeadlineExceeded, true},
		{misp.ErrInvalidArgument, false},
	} {
		if got := misp.OutcomeUnknown(tc.err); got != tc.want {
			t.Errorf("OutcomeUnknown(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestOneDamagedIndexRowCostsOnlyThatRow: a row without a uuid (or a field of the wrong
// type) used to fail the whole page; the other rows are returned and the damaged one
// reported with its id.
func TestOneDamagedIndexRowCostsOnlyThatRow(t *testing.T) {
	srv := newDouble(t, misptest.Options{})
	c := newClient(t, srv, srv.AdminKey())
	partner := misptest.Org{UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", Name: "PARTNER-HIGH"}
	var events []misptest.Event
	for range 3 {
		events = append(events, srv.AddEvent(misptest.Event{Orgc: partner, Locked: true, Attributes: 1}))
	}
	srv.SetIndexRowFault(events[1].UUID, misptest.RowWithoutUUID)
	page, err := c.SearchEventsPage(context.Background(), misp.EventSearch{Limit: 10, Page: 1})
	if err != nil {
		t.Fatalf("one damaged row failed the page: %v", err)
	}
	if len(page.Events) != 2 || page.Events[0].UUID != events[0].UUID || page.Events[1].UUID != events[2].UUID || page.Rows != 3 {
		t.Fatalf("page %+v", page)
	}
	if len(page.Skipped) != 1 || page.Skipped[0].Index != 1 || page.Skipped[0].ID != events[1].ID {
		t.Fatalf("skipped %+v, want row 1 with id %s", page.Skipped, events[1].ID)
	}
	if _, err := c.EventMeta(context.Background(), events[1].UUID); !errors.Is(err, misp.ErrUnexpectedResponse) {
		t.Fatalf("metadata read of the damaged event: %v, want ErrUnexpectedResponse (not ErrNotFound)", err)
	}
}
