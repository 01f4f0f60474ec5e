package catchup

import (
	"context"
	"fmt"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
)

// TimeField is an event clock MISP's /events/index can filter on ("changed at or after").
type TimeField string

const (
	// FieldTimestamp is the event timestamp: this instance's clock for local changes, the
	// partner's for synchronised versions.
	FieldTimestamp TimeField = "timestamp"
	// FieldPublishTimestamp is when this instance last published the event; a pull or a
	// push of a published event publishes it here (see the package doc).
	FieldPublishTimestamp TimeField = "publish_timestamp"
)

// Query is one page of a catch-up search.
type Query struct {
	Field TimeField
	Since time.Time
	// OrgUUID restricts the search to one creator org (re-curation of few orgs); one org
	// per query, because MISP answers [] for a list holding any org it does not know.
	OrgUUID string
	Limit   int
	Page    int // 1-based
}

// Searcher pages through MISP's event index.
type Searcher interface {
	Search(ctx context.Context, q Query) (misp.EventPage, error)
}

// EventSearcher is the part of *misp.Client a MISPSearcher calls.
type EventSearcher interface {
	SearchEventsPage(ctx context.Context, q misp.EventSearch) (misp.EventPage, error)
}

// MISPSearcher runs queries with the MISP client.
type MISPSearcher struct{ Client EventSearcher }

// Fields are the clocks the client can filter on: both.
func (MISPSearcher) Fields() []TimeField {
	return []TimeField{FieldTimestamp, FieldPublishTimestamp}
}

// Search implements Searcher.
func (s MISPSearcher) Search(ctx context.Context, q Query) (misp.EventPage, error) {
	es := misp.EventSearch{Limit: q.Limit, Page: q.Page}
	switch q.Field {
	case FieldTimestamp:
		es.Since = q.Since
	case FieldPublishTimestamp:
		es.PublishedSince = q.Since
	default:
		return misp.EventPage{}, fmt.Errorf("search events by %s: the MISP client cannot filter on it", q.Field)
	}
	if q.OrgUUID != "" {
		es.OrgUUIDs = []string{q.OrgUUID}
	}
	return s.Client.SearchEventsPage(ctx, es)
}
