package misp

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	e1UUID      = "853475bb-cc6b-4e07-b345-ed9e47520557" // sync e1 on A (id 13), pulled from PARTNER-HIGH
	partnerHigh = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
	partnerSub  = "ae01a99a-c08b-4ac3-9e55-69166dad84e9"
	e2UUID      = "4cc5acac-5d94-4185-936a-81f4869a8698"
	mainEvent   = "d2b6214c-3610-45f7-b4f6-03255121e6aa" // api/ event 1
)

func TestEventMeta(t *testing.T) {
	e1 := EventMeta{ID: "13", UUID: e1UUID, OrgcUUID: partnerHigh, OrgcName: "PARTNER-HIGH", OrgID: "1", Published: true, Locked: true,
		Timestamp: time.Unix(1795727898, 0).UTC(),
		Tags:      []Tag{{ID: "50", Name: "tlp:green"}, {ID: "41", Name: `workflow:state="incomplete"`}}}
	tests := []struct {
		name     string
		uuid     string
		handlers []http.HandlerFunc
		want     EventMeta
		wantErr  error
		calls    int
	}{
		{name: "pulled event with Orgc, locked and global tags", uuid: e1UUID,
			handlers: []http.HandlerFunc{replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, want: e1, calls: 1},
		{name: "upper-case uuid is sent lower-case and matched", uuid: strings.ToUpper(e1UUID),
			handlers: []http.HandlerFunc{replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, want: e1, calls: 1},
		{name: "local tags keep their local flag", uuid: mainEvent,
			handlers: []http.HandlerFunc{replay(t, "real/api/56_events_index.json")}, want: EventMeta{
				ID: "1", UUID: mainEvent, OrgcUUID: "997004a6-e769-4ab8-b467-a1ca84cf0666", OrgcName: "ORGNAME", OrgID: "1", Published: true,
				Timestamp: time.Unix(1795726686, 0).UTC(), Tags: []Tag{
					{ID: "48", Name: "tlp:amber"}, {ID: "2", Name: `admiralty-scale:source-reliability="b"`},
					{ID: "55", Name: "client-verification:local-tag", Local: true}, {ID: "42", Name: `workflow:state="complete"`},
					{ID: "56", Name: "client-verification:global-tag"}, {ID: "50", Name: "tlp:green"},
					{ID: "10", Name: `admiralty-scale:information-credibility="3"`}}}, calls: 1},
		{name: "[] is not found", uuid: e1UUID, handlers: []http.HandlerFunc{answer(200, `[]`, "X-Result-Count", "0")}, wantErr: ErrNotFound, calls: 1},
		{name: "another event in the answer is not found", uuid: e2UUID,
			handlers: []http.HandlerFunc{replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, wantErr: ErrNotFound, calls: 1},
		{name: "malformed uuid is refused before sending", uuid: "13", wantErr: ErrInvalidArgument, calls: 0},
		{name: "bad key", uuid: e1UUID, handlers: []http.HandlerFunc{replay(t, "real/api/02_servers_getVersion_badkey.json")}, wantErr: ErrUnauthorized, calls: 1},
		{name: "500 then success", uuid: e1UUID, handlers: []http.HandlerFunc{answer(500, `{"name":"An Internal Error Has Occurred.","message":"An Internal Error Has Occurred.","url":"/events/index"}`),
			replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, want: e1, calls: 2},
		{name: "an object instead of the array", uuid: e1UUID, handlers: []http.HandlerFunc{answer(200, `{"response":[]}`)}, wantErr: ErrUnexpectedResponse, calls: 1},
		{name: "event without uuid", uuid: e1UUID, handlers: []http.HandlerFunc{answer(200, `[{"id":"1"}]`)}, wantErr: ErrUnexpectedResponse, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if len(tt.handlers) > 0 {
				f.on("POST", "/events/index", tt.handlers...)
			}
			c, _ := f.client()
			got, err := c.EventMeta(context.Background(), tt.uuid)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if n := f.count("POST", "/events/index"); n != tt.calls {
				t.Fatalf("%d calls, want %d", n, tt.calls)
			}
			if tt.calls > 0 {
				// Not minimal: minimal drops events without attributes (misp-api.md §2.3).
				jsonEqual(t, f.last("POST", "/events/index").Body, `{"eventid":"`+strings.ToLower(tt.uuid)+`"}`)
			}
		})
	}
}

func TestSearchEvents(t *testing.T) {
	since := time.Unix(1795727800, 0)
	tests := []struct {
		name      string
		q         EventSearch
		handler   http.HandlerFunc
		wantBody  string
		wantUUIDs []string
		wantTotal int
		wantErr   error
	}{
		{name: "everything, no paging", q: EventSearch{}, handler: replay(t, "real/sync/api/24_B_events_index.json"),
			wantBody:  `{"sort":"id","direction":"asc"}`,
			wantUUIDs: []string{e1UUID, e2UUID, "468920c3-40d5-470d-b8b7-9e703430c906", "4fa76b69-216d-4b8f-b0d0-8df6fb5717dd"}, wantTotal: 4},
		{name: "since, orgs (lower-cased, deduplicated) and a page", q: EventSearch{Since: since, OrgUUIDs: []string{strings.ToUpper(partnerHigh), partnerHigh, partnerSub}, Limit: 50, Page: 2},
			handler:   replay(t, "real/sync/api/24_B_events_index.json"),
			wantBody:  `{"sort":"id","direction":"asc","timestamp":"1795727800","org":["` + partnerHigh + `","` + partnerSub + `"],"limit":50,"page":2}`,
			wantUUIDs: []string{e1UUID, e2UUID, "468920c3-40d5-470d-b8b7-9e703430c906", "4fa76b69-216d-4b8f-b0d0-8df6fb5717dd"}, wantTotal: 4},
		{name: "published since (publish_timestamp: our clock, also for pulled events)", q: EventSearch{PublishedSince: since, Limit: 50},
			handler:  answer(200, `[]`, "X-Result-Count", "0"),
			wantBody: `{"sort":"id","direction":"asc","publish_timestamp":"1795727800","limit":50,"page":1}`, wantUUIDs: []string{}, wantTotal: 0},
		{name: "page 0 means page 1", q: EventSearch{Limit: 10}, handler: answer(200, `[]`, "X-Result-Count", "0"),
			wantBody: `{"sort":"id","direction":"asc","limit":10,"page":1}`, wantUUIDs: []string{}, wantTotal: 0},
		{name: "the client filters on Orgc when MISP ignored the org filter", q: EventSearch{OrgUUIDs: []string{partnerSub}},
			handler:   replay(t, "real/sync/api/24_B_events_index.json"),
			wantBody:  `{"sort":"id","direction":"asc","org":["` + partnerSub + `"]}`,
			wantUUIDs: []string{"468920c3-40d5-470d-b8b7-9e703430c906"}, wantTotal: 4},
		{name: "minimal rows decode too (orgc_uuid)", q: EventSearch{OrgUUIDs: []string{partnerHigh}},
			handler:   replay(t, "real/sync/api/25_B_events_index_as_sync_user.json"),
			wantBody:  `{"sort":"id","direction":"asc","org":["` + partnerHigh + `"]}`,
			wantUUIDs: []string{e1UUID, e2UUID, "4fa76b69-216d-4b8f-b0d0-8df6fb5717dd"}, wantTotal: 4},
		{name: "no X-Result-Count gives -1", q: EventSearch{}, handler: answer(200, `[]`), wantBody: `{"sort":"id","direction":"asc"}`, wantUUIDs: []string{}, wantTotal: -1},
		{name: "malformed org uuid", q: EventSearch{OrgUUIDs: []string{"CIRCL"}}, wantErr: ErrInvalidArgument},
		{name: "negative limit", q: EventSearch{Limit: -1}, wantErr: ErrInvalidArgument},
		{name: "bad key", q: EventSearch{}, handler: replay(t, "real/api/02_servers_getVersion_badkey.json"), wantErr: ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/events/index", tt.handler)
			}
			c, _ := f.client()
			page, err := c.SearchEventsPage(context.Background(), tt.q)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if tt.handler == nil && len(f.requests()) != 0 {
					t.Fatalf("a refused search sent %d requests", len(f.requests()))
				}
				return
			}
			jsonEqual(t, f.last("POST", "/events/index").Body, tt.wantBody)
			uuids := []string{}
			for _, e := range page.Events {
				uuids = append(uuids, e.UUID)
			}
			if !reflect.DeepEqual(uuids, tt.wantUUIDs) || page.Total != tt.wantTotal {
				t.Errorf("got %v total %d, want %v total %d", uuids, page.Total, tt.wantUUIDs, tt.wantTotal)
			}
		})
	}

	t.Run("SearchEvents returns the events of the page", func(t *testing.T) {
		f := newFake(t).on("POST", "/events/index", replay(t, "real/sync/api/24_B_events_index.json"))
		c, _ := f.client()
		events, err := c.SearchEvents(context.Background(), EventSearch{Since: since})
		if err != nil || len(events) != 4 {
			t.Fatalf("got %d events, err %v", len(events), err)
		}
		if e := events[0]; e.OrgcUUID != partnerHigh || !e.Published || e.Locked || len(e.Tags) != 3 || !e.Tags[2].Local {
			t.Errorf("first event %+v", e)
		}
	})
}

func TestAttachTags(t *testing.T) {
	tests := []struct {
		name     string
		uuid     string
		tags     []string
		local    bool
		handler  http.HandlerFunc
		wantBody string
		wantErr  error
	}{
		{name: "local tag", uuid: e1UUID, tags: []string{`admiralty-scale:source-reliability="a"`}, local: true,
			handler:  replay(t, "real/sync/api/57_A_admin_tag_e1_local_admiralty_a.json"),
			wantBody: `{"uuid":"` + e1UUID + `","tag":"admiralty-scale:source-reliability=\"a\"","local":1}`},
		{name: "new local tag is created", uuid: mainEvent, tags: []string{"client-verification:local-tag"}, local: true,
			handler:  replay(t, "real/api/38_tags_attachTagToObject_event_local_new.json"),
			wantBody: `{"uuid":"` + mainEvent + `","tag":"client-verification:local-tag","local":1}`},
		{name: "global tag", uuid: e2UUID, tags: []string{"tlp:amber"}, handler: replay(t, "real/sync/api/79_A_admin_tag_e2_global_custom.json"),
			wantBody: `{"uuid":"` + e2UUID + `","tag":"tlp:amber","local":0}`},
		{name: "already attached is a success", uuid: mainEvent, tags: []string{`workflow:state="incomplete"`},
			handler:  replay(t, "real/api/40_tags_attachTagToObject_already_attached.json"),
			wantBody: `{"uuid":"` + mainEvent + `","tag":"workflow:state=\"incomplete\"","local":0}`},
		{name: "several tags go as a list", uuid: mainEvent, tags: []string{"tlp:green", `admiralty-scale:information-credibility="3"`},
			handler:  replay(t, "real/api/47_tags_attachTagToObject_multi.json"),
			wantBody: `{"uuid":"` + mainEvent + `","tag":["tlp:green","admiralty-scale:information-credibility=\"3\""],"local":0}`},
		{name: "403 saved:false is a validation error", uuid: mainEvent, tags: []string{"999999"},
			handler: replay(t, "real/api/41_tags_attachTagToObject_badtag_id.json"), wantErr: ErrValidation},
		{name: "global tag on another org's event is forbidden", uuid: e2UUID, tags: []string{`workflow:state="complete"`},
			handler: replay(t, "real/sync/api/74_A_pub_tag_e2_global_workflow_complete.json"), wantErr: ErrForbidden},
		{name: "unknown event", uuid: e2UUID, tags: []string{"tlp:green"},
			handler: answer(404, `{"name":"Invalid Target.","message":"Invalid Target.","url":"/tags/attachTagToObject"}`), wantErr: ErrNotFound},
		{name: "200 with saved:false is not a success", uuid: e2UUID, tags: []string{"tlp:green"},
			handler: answer(200, `{"saved":false,"name":"Could not attachTagToObject Tag","message":"Could not attachTagToObject Tag","errors":"x"}`), wantErr: ErrValidation},
		{name: "malformed uuid", uuid: "not-a-uuid", tags: []string{"tlp:green"}, wantErr: ErrInvalidArgument},
		{name: "empty tag name", uuid: e2UUID, tags: []string{" "}, wantErr: ErrInvalidArgument},
		{name: "no tags: nothing to do", uuid: e2UUID, tags: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/tags/attachTagToObject", tt.handler)
			}
			c, _ := f.client()
			err := c.AttachTags(context.Background(), tt.uuid, tt.tags, tt.local)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.handler == nil {
				if n := len(f.requests()); n != 0 {
					t.Fatalf("%d requests sent, want none", n)
				}
				return
			}
			if n := f.count("POST", "/tags/attachTagToObject"); n != 1 {
				t.Errorf("%d calls, want 1 (4xx are never retried)", n)
			}
			if tt.wantBody != "" {
				jsonEqual(t, f.last("POST", "/tags/attachTagToObject").Body, tt.wantBody)
			}
		})
	}
}

func TestRemoveTag(t *testing.T) {
	tests := []struct {
		name       string
		uuid, tag  string
		handler    http.HandlerFunc
		wantErr    error
		wantStatus int
	}{
		{name: "global tag removed by the site admin", uuid: e1UUID, tag: `workflow:state="incomplete"`,
			handler: replay(t, "real/sync/api/59_A_admin_remove_global_workflow_incomplete_e1.json")},
		{name: "removed (main run)", uuid: mainEvent, tag: `workflow:state="incomplete"`, handler: replay(t, "real/api/42_tags_removeTagFromObject.json")},
		{name: "tag not attached is not found", uuid: e1UUID, tag: "tlp:red", wantStatus: 404,
			handler: answer(404, `{"name":"Could not remove tag as it is not attached to the target Event","message":"Could not remove tag as it is not attached to the target Event","url":"/tags/removeTagFromObject"}`),
			wantErr: ErrNotFound},
		{name: "tag unknown to MISP is not found either", uuid: e1UUID, tag: "no-such-tag", wantStatus: 405,
			handler: answer(405, `{"name":"Invalid Tag.","message":"Invalid Tag.","url":"/tags/removeTagFromObject"}`), wantErr: ErrNotFound},
		{name: "other 405 stays not allowed", uuid: e1UUID, tag: "tlp:red", wantStatus: 405,
			handler: answer(405, `{"name":"This method is only accessible via POST requests.","message":"This method is only accessible via POST requests.","url":"/tags/removeTagFromObject"}`), wantErr: ErrNotAllowed},
		{name: "global tag of another org without site admin", uuid: e2UUID, tag: `workflow:state="incomplete"`, wantStatus: 403,
			handler: replay(t, "real/sync/api/71_A_pub_remove_global_workflow_incomplete_e2.json"), wantErr: ErrForbidden},
		{name: "malformed uuid", uuid: "x", tag: "t", wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.handler != nil {
				f.on("POST", "/tags/removeTagFromObject", tt.handler)
			}
			c, _ := f.client()
			err := c.RemoveTag(context.Background(), tt.uuid, tt.tag)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var ae *APIError
			if tt.wantStatus != 0 && (!errors.As(err, &ae) || ae.Status != tt.wantStatus) {
				t.Errorf("APIError status %+v, want %d", ae, tt.wantStatus)
			}
			if tt.handler != nil {
				jsonEqual(t, f.last("POST", "/tags/removeTagFromObject").Body, `{"uuid":"`+tt.uuid+`","tag":`+jsonString(tt.tag)+`}`)
			}
		})
	}
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name     string
		handlers []http.HandlerFunc
		want     string
		wantErr  error
		calls    int
	}{
		{name: "background jobs: job queued", handlers: []http.HandlerFunc{replay(t, "real/sync/api/63_A_admin_publish_e1.json")}, want: "Job queued", calls: 1},
		{name: "synchronous publish", handlers: []http.HandlerFunc{replay(t, "real/api/51_events_publish.json")}, want: "Event published without alerts", calls: 1},
		{name: "background jobs run (main capture)", handlers: []http.HandlerFunc{replay(t, "real/background_jobs/api/04_events_publish_background.json")}, want: "Job queued", calls: 1},
		{name: "unknown event", handlers: []http.HandlerFunc{replay(t, "real/api/62_events_publish_404.json")}, wantErr: ErrNotFound, calls: 1},
		{name: "publisher of another org's event gets 405", handlers: []http.HandlerFunc{replay(t, "real/sync/api/77_A_pub_publish_e2_by_uuid.json")}, wantErr: ErrNotAllowed, calls: 1},
		{name: "failed push is a validation error (save-fail shape)", handlers: []http.HandlerFunc{
			answer(403, `{"saved":false,"name":"Could not publish Event","message":"Could not publish Event","url":"/events/publish/13","errors":{"failed_servers":["1"]},"id":"13"}`)},
			wantErr: ErrValidation, calls: 1},
		{name: "502 is not retried: the publish may have gone through", handlers: []http.HandlerFunc{answer(502, "<html>bad gateway</html>", "Content-Type", "text/html"),
			replay(t, "real/sync/api/63_A_admin_publish_e1.json")}, wantErr: ErrServer, calls: 1},
		{name: "429 with Retry-After then success", handlers: []http.HandlerFunc{answer(429, `{"name":"Too Many Requests","message":"Too Many Requests","url":"/"}`, "Retry-After", "1"),
			replay(t, "real/sync/api/63_A_admin_publish_e1.json")}, want: "Job queued", calls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("POST", "/events/publish/"+e1UUID, tt.handlers...)
			c, _ := f.client(func(o *Options) { o.RetryMaxDelay = 5 * time.Second })
			got, err := c.Publish(context.Background(), strings.ToUpper(e1UUID))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if n := f.count("POST", "/events/publish/"+e1UUID); n != tt.calls {
				t.Errorf("%d calls, want %d", n, tt.calls)
			}
			jsonEqual(t, f.last("POST", "/events/publish/"+e1UUID).Body, `{}`)
		})
	}
	t.Run("malformed uuid", func(t *testing.T) {
		c, _ := newFake(t).client()
		if _, err := c.Publish(context.Background(), "../servers/pull/1"); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

func TestEventMetaByID(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		handlers []http.HandlerFunc
		wantUUID string
		wantErr  error
		calls    int
	}{
		{name: "the local id of a pulled event", id: "13",
			handlers: []http.HandlerFunc{replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, wantUUID: e1UUID, calls: 1},
		{name: "an answer about another id is not found", id: "14",
			handlers: []http.HandlerFunc{replay(t, "real/sync/api/51_A_events_index_eventid_e1.json")}, wantErr: ErrNotFound, calls: 1},
		{name: "[] is not found", id: "13", handlers: []http.HandlerFunc{answer(200, `[]`, "X-Result-Count", "0")}, wantErr: ErrNotFound, calls: 1},
		{name: "a uuid is refused before sending (EventMeta takes those)", id: e1UUID, wantErr: ErrInvalidArgument, calls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if len(tt.handlers) > 0 {
				f.on("POST", "/events/index", tt.handlers...)
			}
			c, _ := f.client()
			got, err := c.EventMetaByID(context.Background(), tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.UUID != tt.wantUUID {
				t.Errorf("uuid = %q, want %q", got.UUID, tt.wantUUID)
			}
			if n := f.count("POST", "/events/index"); n != tt.calls {
				t.Fatalf("%d calls, want %d", n, tt.calls)
			}
			if tt.calls > 0 {
				jsonEqual(t, f.last("POST", "/events/index").Body, `{"eventid":"`+tt.id+`"}`)
			}
		})
	}
}

func TestSearchSkipsRowsThatDoNotDecode(t *testing.T) {
	body := `[{"id":"7","uuid":"5a3c2fcd-8328-42bb-a95e-4f4402de0b81","EventTag":"oops"},` +
		`{"id":"8","uuid":"6b4d3ede-9439-43cc-b06f-5f5513ef1c92","published":true}]`
	f := newFake(t).on("POST", "/events/index", answer(200, body, "X-Result-Count", "2"))
	c, _ := f.client()
	page, err := c.SearchEventsPage(context.Background(), EventSearch{Limit: 2, Page: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].ID != "8" || len(page.Skipped) != 1 || page.Skipped[0].ID != "7" || page.Rows != 2 {
		t.Fatalf("page %+v", page)
	}
}
