package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/misp/misptest/zmqpub"
)

// simAPI serves /_sim/, the simulator's admin API (never MISP's).
type simAPI struct {
	s          *misptest.Server
	requireKey bool
	logf       func(string, ...any)
}

func (a *simAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sim/pull", a.sync(pull))
	mux.HandleFunc("POST /_sim/push", a.sync(push))
	mux.HandleFunc("POST /_sim/fault", a.fault)
	mux.HandleFunc("POST /_sim/down", a.down)
	mux.HandleFunc("POST /_sim/publisher", a.publisher)
	mux.HandleFunc("GET /_sim/events", a.events)
	mux.HandleFunc("GET /_sim/messages", a.messages)
	mux.HandleFunc("GET /_sim/stats", a.stats)
	mux.HandleFunc("GET /_sim/requests", a.requests)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.requireKey {
			// Reachable from elsewhere: only the admin key may drive the simulator.
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, []byte(a.s.AdminKey())) != 1 {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "the simulator API needs the admin key in Authorization"})
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func badRequest(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}

// ---- JSON specs ----

// orgSpec names an organisation by uuid (preferred) or id; name is used when it is created.
type orgSpec struct {
	ID    string `json:"id,omitempty"`
	UUID  string `json:"uuid,omitempty"`
	Name  string `json:"name,omitempty"`
	Local bool   `json:"local,omitempty"`
}

func (o *orgSpec) org() misptest.Org {
	if o == nil {
		return misptest.Org{}
	}
	return misptest.Org{ID: o.ID, UUID: o.UUID, Name: o.Name, Local: o.Local}
}

// tagSpec is "name" or {"name": ..., "local": true}.
type tagSpec struct {
	Name  string `json:"name"`
	Local bool   `json:"local"`
}

func (t *tagSpec) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &t.Name)
	}
	type plain tagSpec
	return json.Unmarshal(b, (*plain)(t))
}

// eventSpec describes a partner's event (or its new version for an existing uuid).
type eventSpec struct {
	ID                    string    `json:"id"`
	UUID                  string    `json:"uuid"`
	Info                  string    `json:"info"`
	Orgc                  *orgSpec  `json:"orgc"`
	Org                   *orgSpec  `json:"org"`
	Published             *bool     `json:"published"`
	Locked                bool      `json:"locked"`
	Timestamp             int64     `json:"timestamp"`
	Date                  string    `json:"date"`
	Distribution          string    `json:"distribution"`
	Attributes            *int      `json:"attributes"`
	AddAttributes         int       `json:"add_attributes"`
	SoftDeletedAttributes int       `json:"soft_deleted_attributes"`
	EditedAttributes      int       `json:"edited_attributes"`
	Tags                  []tagSpec `json:"tags"`
	RemoteID              int       `json:"remote_id"`
	ServerID              string    `json:"server_id"`
	Via                   string    `json:"via"` // seed files: "add" (default), "pull" or "push"
}

func (e eventSpec) event() misptest.Event {
	ev := misptest.Event{ID: e.ID, UUID: e.UUID, Info: e.Info, Orgc: e.Orgc.org(), Org: e.Org.org(), Locked: e.Locked,
		Date: e.Date, Distribution: e.Distribution, SoftDeletedAttributes: e.SoftDeletedAttributes, EditedAttributes: e.EditedAttributes}
	if e.Published != nil {
		ev.Published = *e.Published
	}
	if e.Timestamp > 0 {
		ev.Timestamp = time.Unix(e.Timestamp, 0)
	}
	if e.Attributes != nil {
		ev.Attributes = *e.Attributes
	}
	ev.Attributes += e.AddAttributes
	for _, t := range e.Tags {
		ev.Tags = append(ev.Tags, misptest.EventTag{Name: t.Name, Local: t.Local})
	}
	return ev
}

// mutate applies the fields given in the spec to the partner's current version.
func (e eventSpec) mutate(ev *misptest.Event) {
	if e.Info != "" {
		ev.Info = e.Info
	}
	if e.Published != nil {
		ev.Published = *e.Published
	}
	if e.Timestamp > 0 {
		ev.Timestamp = time.Unix(e.Timestamp, 0)
	}
	if e.Attributes != nil {
		ev.Attributes = *e.Attributes
	}
	ev.Attributes += e.AddAttributes
	ev.SoftDeletedAttributes = e.SoftDeletedAttributes
	ev.EditedAttributes = e.EditedAttributes
	if e.Tags != nil {
		ev.Tags = nil
		for _, t := range e.Tags {
			ev.Tags = append(ev.Tags, misptest.EventTag{Name: t.Name, Local: t.Local})
		}
	}
}

// eventView is how the simulator shows an event.
type eventView struct {
	ID               string    `json:"id"`
	UUID             string    `json:"uuid"`
	Info             string    `json:"info"`
	Orgc             orgSpec   `json:"orgc"`
	Org              orgSpec   `json:"org"`
	Published        bool      `json:"published"`
	Locked           bool      `json:"locked"`
	Timestamp        int64     `json:"timestamp"`
	PublishTimestamp int64     `json:"publish_timestamp"`
	Attributes       int       `json:"attributes"`
	Tags             []tagSpec `json:"tags"`
}

func viewOf(e misptest.Event) eventView {
	v := eventView{ID: e.ID, UUID: e.UUID, Info: e.Info, Published: e.Published, Locked: e.Locked,
		Orgc:      orgSpec{ID: e.Orgc.ID, UUID: e.Orgc.UUID, Name: e.Orgc.Name, Local: e.Orgc.Local},
		Org:       orgSpec{ID: e.Org.ID, UUID: e.Org.UUID, Name: e.Org.Name, Local: e.Org.Local},
		Timestamp: e.Timestamp.Unix(), Attributes: e.Attributes, Tags: []tagSpec{}}
	if !e.PublishTimestamp.IsZero() {
		v.PublishTimestamp = e.PublishTimestamp.Unix()
	}
	for _, t := range e.Tags {
		v.Tags = append(v.Tags, tagSpec{Name: t.Name, Local: t.Local})
	}
	return v
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	return nil
}

// ---- handlers ----

type syncKind int

const (
	pull syncKind = iota
	push
)

// sync serves /_sim/pull and /_sim/push: a new uuid is added, an existing one edited with the
// fields given (attributes/add_attributes, soft_deleted_attributes, edited_attributes, tags,
// published, info, timestamp).
func (a *simAPI) sync(kind syncKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec eventSpec
		if err := decodeStrict(r, &spec); err != nil {
			badRequest(w, err)
			return
		}
		opts := misptest.PullOptions{ServerID: spec.ServerID, RemoteID: spec.RemoteID}
		_, exists := a.s.Event(spec.UUID)
		var ev misptest.Event
		switch {
		case exists && kind == pull:
			ev = a.s.SimulatePullEditWith(spec.UUID, opts, spec.mutate)
		case exists:
			ev = a.s.SimulatePushEdit(spec.UUID, spec.mutate)
		case spec.Orgc == nil:
			badRequest(w, errors.New(`a new event needs "orgc" (its creator organisation)`))
			return
		case kind == pull:
			ev = a.s.SimulatePullWith(spec.event(), opts)
		default:
			ev = a.s.SimulatePush(spec.event())
		}
		writeJSON(w, http.StatusOK, viewOf(ev))
	}
}

func (a *simAPI) fault(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Endpoint    string  `json:"endpoint"`
		Latency     string  `json:"latency"`
		ErrorRate   float64 `json:"error_rate"`
		ErrorStatus int     `json:"error_status"`
		DropConn    bool    `json:"drop_conn"`
	}
	if err := decodeStrict(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	var f misptest.Fault
	if req.Latency != "" {
		d, err := time.ParseDuration(req.Latency)
		if err != nil {
			badRequest(w, fmt.Errorf("latency: %w", err))
			return
		}
		f.Latency = d
	}
	switch req.ErrorStatus {
	case 0, 429, 500, 502, 503, 504:
	default:
		badRequest(w, fmt.Errorf("error_status %d: use 429, 500, 502, 503 or 504", req.ErrorStatus))
		return
	}
	if req.ErrorRate < 0 || req.ErrorRate > 1 {
		badRequest(w, errors.New("error_rate must be between 0 and 1"))
		return
	}
	f.ErrorRate, f.ErrorStatus, f.DropConn = req.ErrorRate, req.ErrorStatus, req.DropConn
	a.s.SetFault(req.Endpoint, f)
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": req.Endpoint, "fault": f != misptest.Fault{}})
}

func (a *simAPI) down(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Down bool `json:"down"`
	}
	if err := decodeStrict(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	a.s.SetDown(req.Down)
	writeJSON(w, http.StatusOK, map[string]bool{"down": req.Down})
}

func (a *simAPI) publisher(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Restart  bool     `json:"restart"`
		Silent   *bool    `json:"silent"`
		DropRate *float64 `json:"drop_rate"`
	}
	if err := decodeStrict(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	if a.s.ZMQEndpoint() == "" {
		badRequest(w, errors.New("ZeroMQ is off (-no-zmq)"))
		return
	}
	if req.DropRate != nil && (*req.DropRate < 0 || *req.DropRate > 1) {
		badRequest(w, errors.New("drop_rate must be between 0 and 1"))
		return
	}
	if req.Silent != nil {
		a.s.SetPublisherSilent(*req.Silent)
	}
	if req.DropRate != nil {
		a.s.SetZMQDropRate(*req.DropRate)
	}
	if req.Restart {
		a.s.RestartPublisher()
	}
	writeJSON(w, http.StatusOK, zmqStatsView(a.s.ZMQStats()))
}

func zmqStatsView(st zmqpub.Stats) map[string]any {
	return map[string]any{
		"published": st.Published, "dropped": st.Dropped, "heartbeats": st.Heartbeats, "restarts": st.Restarts,
		"silenced": st.Silenced, "queue_drops": st.QueueDrops, "auth_failures": st.AuthFailures,
		"handshake_failures": st.HandshakeFailures, "subscribers": st.Subscribers,
	}
}

func (a *simAPI) events(w http.ResponseWriter, _ *http.Request) {
	out := []eventView{}
	for _, e := range a.s.Events() {
		out = append(out, viewOf(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// messages lists the ZeroMQ messages from ?since=N (default: the last 100).
func (a *simAPI) messages(w http.ResponseWriter, r *http.Request) {
	all := a.s.Published()
	since := len(all) - 100
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			badRequest(w, fmt.Errorf("since %q: want a message index", v))
			return
		}
		since = n
	}
	since = max(0, min(since, len(all)))
	type msg struct {
		Index   int             `json:"index"`
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	out := []msg{}
	for i, m := range all[since:] {
		p := json.RawMessage(m.Payload)
		if !json.Valid(p) {
			p, _ = json.Marshal(string(m.Payload))
		}
		out = append(out, msg{Index: since + i, Topic: m.Topic, Payload: p})
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(all), "messages": out})
}

func (a *simAPI) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"calls":        a.s.CallsByRoute(),
		"write_calls":  a.s.WriteCalls(),
		"bytes_served": a.s.BytesServed(),
		"requests":     len(a.s.Requests()),
		"zmq_messages": len(a.s.Published()),
		"zmq":          zmqStatsView(a.s.ZMQStats()),
	})
}

// ---- seed file ----

type seedFile struct {
	Orgs []orgSpec `json:"orgs"`
	// Servers are connected servers (pull links), ids 1, 2, … in this order; remote_org
	// names the partner's organisation, the sharer of what is pulled through the link.
	Servers []struct {
		Name      string  `json:"name"`
		RemoteOrg orgSpec `json:"remote_org"`
	} `json:"servers"`
	Users []struct {
		Org  orgSpec `json:"org"`
		Role struct {
			SiteAdmin   bool `json:"site_admin"`
			Publish     bool `json:"publish"`
			Tagger      bool `json:"tagger"`
			TagEditor   bool `json:"tag_editor"`
			Warninglist bool `json:"warninglist"`
		} `json:"role"`
		Key string `json:"key"`
	} `json:"users"`
	Warninglists []struct {
		Name               string   `json:"name"`
		Type               string   `json:"type"`
		Description        string   `json:"description"`
		Category           string   `json:"category"`
		Enabled            bool     `json:"enabled"`
		Entries            []string `json:"entries"`
		MatchingAttributes []string `json:"matching_attributes"`
	} `json:"warninglists"`
	Events []eventSpec `json:"events"`
}

type seedCounts struct{ orgs, users, events int }

// loadSeedFile creates what the seed file lists. User keys must be given (they are never
// printed); events are added directly unless "via" is "pull" or "push".
func loadSeedFile(s *misptest.Server, path string) (seedCounts, error) {
	var n seedCounts
	b, err := os.ReadFile(path)
	if err != nil {
		return n, fmt.Errorf("read seed file: %w", err)
	}
	var f seedFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return n, fmt.Errorf("parse seed file %s: %w", path, err)
	}
	byName := map[string]orgSpec{}
	for _, o := range f.Orgs {
		if o.Name == "" {
			return n, errors.New("seed file: an org without a name")
		}
		org := s.AddOrg(o.Name, o.UUID)
		byName[strings.ToLower(o.Name)] = orgSpec{ID: org.ID, UUID: org.UUID, Name: org.Name}
		n.orgs++
	}
	resolve := func(o *orgSpec) {
		if o != nil && o.UUID == "" && o.ID == "" {
			if known, ok := byName[strings.ToLower(o.Name)]; ok {
				*o = known
			}
		}
	}
	for i, sv := range f.Servers {
		resolve(&sv.RemoteOrg)
		if sv.RemoteOrg.UUID == "" && sv.RemoteOrg.ID == "" {
			return n, fmt.Errorf("seed file: server %d: remote_org must name a seeded org or give a uuid", i+1)
		}
		s.AddServer(sv.Name, sv.RemoteOrg.org())
	}
	for i, u := range f.Users {
		resolve(&u.Org)
		org := u.Org.org()
		if org.UUID == "" && org.ID == "" {
			org = s.HostOrg()
		}
		role := misptest.Role{SiteAdmin: u.Role.SiteAdmin, Publish: u.Role.Publish, Tagger: u.Role.Tagger,
			TagEditor: u.Role.TagEditor, Warninglist: u.Role.Warninglist}
		if err := s.AddUserKey(org, role, u.Key); err != nil {
			return n, fmt.Errorf("seed file: user %d: %w", i+1, err)
		}
		n.users++
	}
	for _, wl := range f.Warninglists {
		w := misptest.WL{Name: wl.Name, Type: wl.Type, Description: wl.Description, Category: wl.Category,
			Enabled: wl.Enabled, MatchingAttributes: wl.MatchingAttributes}
		for _, e := range wl.Entries {
			value, comment, _ := strings.Cut(e, "#")
			w.Entries = append(w.Entries, misptest.WLEntry{Value: strings.TrimSpace(value), Comment: strings.TrimSpace(comment)})
		}
		s.AddWarninglist(w)
	}
	for i, e := range f.Events {
		resolve(e.Orgc)
		resolve(e.Org)
		switch e.Via {
		case "", "add":
			s.AddEvent(e.event())
		case "pull":
			if e.Orgc == nil {
				return n, fmt.Errorf("seed file: event %d: a pulled event needs orgc", i+1)
			}
			s.SimulatePullWith(e.event(), misptest.PullOptions{ServerID: e.ServerID, RemoteID: e.RemoteID})
		case "push":
			if e.Orgc == nil {
				return n, fmt.Errorf("seed file: event %d: a pushed event needs orgc", i+1)
			}
			s.SimulatePush(e.event())
		default:
			return n, fmt.Errorf("seed file: event %d: via %q, want add, pull or push", i+1, e.Via)
		}
		n.events++
	}
	return n, nil
}
