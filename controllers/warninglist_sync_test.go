package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// newTestClient is a real MISP client for the double, without retries.
func newTestClient(t testing.TB, srv *misptest.Server, key string) *misp.Client {
	t.Helper()
	c, err := misp.New(misp.Options{URL: srv.URL(), APIKey: key, MaxRetries: -1, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSyncerSpendsOnlyTheCallsNeeded(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	defer srv.Close()
	api := newTestClient(t, srv, srv.AdminKey())
	mem := newListMemory()
	now := time.Now()
	s := func(at time.Time) *syncer {
		return &syncer{api: api, mem: mem, metrics: newMetrics(nil), name: types.NamespacedName{Namespace: "ns", Name: "high"},
			uid: "uid-1", instance: "i", owner: testOwner, now: at, interval: time.Minute}
	}
	p := testPolicy()
	want := buildDesiredList(p, testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}}, nil)
	ctx := context.Background()

	type step struct {
		name   string
		before func()
		at     time.Time
		want   desiredList
		check  func(syncOutcome) error
		calls  map[string]int
	}
	changed := buildDesiredList(p, testOwner, []trust.Org{{UUID: uuidN(1), Name: "One"}, {UUID: uuidN(2), Name: "Two"}}, nil)
	noWrite := func(o syncOutcome) error {
		if o.Updated || o.Created || len(o.Drift) > 0 {
			return errors.New("wrote on a no-op resync")
		}
		return nil
	}
	steps := []step{
		{"a new list is found absent, added and enabled", nil, now, want, func(o syncOutcome) error {
			if !o.Created || !o.Enabled || o.ID == "" {
				return errors.New("not created and enabled")
			}
			return nil
		}, map[string]int{"/warninglists/index": 1, "/warninglists/add": 1, "/warninglists/toggleEnable": 1}},
		{"in sync before the resync: no call", nil, now.Add(time.Second), want, nil, map[string]int{}},
		{"a changed policy: one edit", nil, now.Add(2 * time.Second), changed, func(o syncOutcome) error {
			if !o.Updated || o.Version != 2 {
				return errors.New("not reported as updated to version 2")
			}
			return nil
		}, map[string]int{"/warninglists/edit": 1}},
		{"resync due, version known from the edit: one index lookup, the entries are not downloaded", nil,
			now.Add(2 * time.Minute), changed, noWrite, map[string]int{"/warninglists/index": 1}},
		{"a list edited in MISP (version 3): index lookup, view, repair", func() {
			id := srvListID(t, srv, changed.Name)
			srv.EditWarninglistUI(id, func(w *misptest.WL) { w.Entries[0].Comment = "renamed in the UI" })
		}, now.Add(4 * time.Minute), changed, func(o syncOutcome) error {
			if len(o.Drift) != 1 || o.Drift[0] != driftEntries || o.Version != 4 {
				return fmt.Errorf("drift %v version %d, want entries repaired to version 4", o.Drift, o.Version)
			}
			return nil
		}, map[string]int{"/warninglists/index": 1, "/warninglists/view": 1, "/warninglists/edit": 1}},
		{"next resync: one index lookup again", nil, now.Add(6 * time.Minute), changed, noWrite, map[string]int{"/warninglists/index": 1}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		srv.ResetStats()
		out, err := s(st.at).sync(ctx, st.want, listRecord{})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.check != nil {
			if err := st.check(out); err != nil {
				t.Errorf("%s: %v (%+v)", st.name, err, out)
			}
		}
		got := srv.CallsByRoute()
		if len(got) != len(st.calls) {
			t.Errorf("%s: calls %v, want %v", st.name, got, st.calls)
		}
		for r, n := range st.calls {
			if got[r] != n {
				t.Errorf("%s: calls %v, want %v", st.name, got, st.calls)
			}
		}
	}

	t.Run("after a restart the status record finds the list with one index lookup, or one view without a version", func(t *testing.T) {
		wl, _ := srv.WarninglistByName(want.Name)
		for _, tc := range []struct {
			version int
			calls   map[string]int
		}{
			{wl.Version, map[string]int{"/warninglists/index": 1}},
			{0, map[string]int{"/warninglists/view": 1}},
		} {
			srv.ResetStats()
			fresh := s(now)
			fresh.mem = newListMemory()
			out, err := fresh.sync(ctx, changed, listRecord{ID: wl.ID, Name: changed.Name, EntriesHash: changed.EntriesHash,
				Description: changed.Description, Version: tc.version, InSync: true})
			if err != nil || out.ID != wl.ID || out.Updated || len(out.Drift) > 0 {
				t.Fatalf("out %+v err %v", out, err)
			}
			if got := srv.CallsByRoute(); fmt.Sprint(got) != fmt.Sprint(tc.calls) {
				t.Errorf("version %d: calls %v, want %v", tc.version, got, tc.calls)
			}
		}
	})
	t.Run("a list under the recorded id with a foreign name is never touched", func(t *testing.T) {
		other := srv.AddWarninglist(misptest.WL{Name: "someone else's", Type: "string", Category: "known", Description: "x",
			Entries: []misptest.WLEntry{{Value: "v"}}})
		fresh := s(now)
		fresh.mem = newListMemory()
		fresh.name = types.NamespacedName{Namespace: "ns", Name: "other"}
		fresh.owner = listOwner{Policy: "ns/other"}
		p2 := testPolicy()
		p2.Name = "other"
		w2 := buildDesiredList(p2, listOwner{Policy: "ns/other"}, []trust.Org{{UUID: uuidN(3)}}, nil)
		out, err := fresh.sync(ctx, w2, listRecord{ID: other.ID, Name: "misp-trust-operator/ns/other", InSync: true})
		if err != nil || !out.Created || out.ID == other.ID {
			t.Fatalf("out %+v err %v: want a new list", out, err)
		}
		if got, _ := srv.Warninglist(other.ID); got.Name != "someone else's" || len(got.Entries) != 1 {
			t.Errorf("foreign list changed: %+v", got)
		}
	})
	t.Run("deleteList never deletes a list another object owns", func(t *testing.T) {
		wl, _ := srv.WarninglistByName(want.Name)
		srv.ResetStats()
		id, kept, err := deleteList(ctx, api, changed, listRecord{ID: wl.ID, Name: changed.Name}, listOwner{Policy: "other-ns/high"})
		if err != nil || id != "" || !strings.Contains(kept, "belongs to OrgTrustPolicy ns/high") {
			t.Fatalf("deleteList = %q, %q, %v", id, kept, err)
		}
		if _, ok := srv.Warninglist(wl.ID); !ok || srv.Calls("/warninglists/delete") != 0 {
			t.Error("deleted")
		}
	})
	t.Run("deleteList deletes the recorded list and confirms it", func(t *testing.T) {
		wl, _ := srv.WarninglistByName(want.Name)
		srv.ResetStats()
		id, kept, err := deleteList(ctx, api, changed, listRecord{ID: wl.ID, Name: changed.Name}, testOwner)
		if err != nil || id != wl.ID || kept != "" {
			t.Fatalf("deleteList = %q, %q, %v", id, kept, err)
		}
		if _, ok := srv.Warninglist(wl.ID); ok {
			t.Error("still there")
		}
		if got := srv.CallsByRoute(); got["/warninglists/delete"] != 1 || got["/warninglists/view"] != 2 {
			t.Errorf("calls %v, want view, delete, view", got)
		}
		id, _, err = deleteList(ctx, api, changed, listRecord{ID: wl.ID, Name: changed.Name}, testOwner)
		if err != nil || id != "" {
			t.Errorf("deleting again = %q, %v; want nothing to do", id, err)
		}
	})
}

func srvListID(t *testing.T, srv *misptest.Server, name string) string {
	t.Helper()
	wl, ok := srv.WarninglistByName(name)
	if !ok {
		t.Fatalf("no list %q", name)
	}
	return wl.ID
}

// versionProxy serves the double but answers getVersion with version.
func versionProxy(t *testing.T, srv *misptest.Server, version string) string {
	t.Helper()
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/servers/getVersion" && r.Header.Get("Authorization") == srv.AdminKey() {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"version":"`+version+`","perm_sync":true,"perm_sighting":true}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestCheckInstanceVersion(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	defer srv.Close()
	cases := []struct{ version, reason string }{
		{"2.4.144", ReasonVersionTooOld},
		{"2.4.145", ReasonReachable},
		{"garbage", ReasonVersionUnknown},
	}
	for _, c := range cases {
		u := versionProxy(t, srv, c.version)
		api, err := misp.New(misp.Options{URL: u, APIKey: srv.AdminKey(), MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		ck := checkInstance(context.Background(), api, u)
		r := condition(ck.Conditions, "Reachable")
		ready := condition(ck.Conditions, "Ready")
		if r.Reason != c.reason {
			t.Errorf("version %s: Reachable %s/%s (%s), want reason %s", c.version, r.Status, r.Reason, r.Message, c.reason)
		}
		if (c.reason == ReasonReachable) != (ready.Status == "True") {
			t.Errorf("version %s: Ready %s/%s", c.version, ready.Status, ready.Reason)
		}
		if c.reason == ReasonVersionTooOld && !strings.Contains(r.Message, "2.4.145") {
			t.Errorf("message %q does not say which version is needed", r.Message)
		}
	}
}

func TestCheckInstanceUnreachable(t *testing.T) {
	srv := misptest.NewServer(misptest.Options{})
	srv.SetDown(true)
	defer srv.Close()
	api := newTestClient(t, srv, srv.AdminKey())
	ck := checkInstance(context.Background(), api, srv.URL())
	if r := condition(ck.Conditions, "Reachable"); r.Reason != ReasonUnreachable || ck.Transient == nil {
		t.Errorf("Reachable %s/%s transient %v", r.Status, r.Reason, ck.Transient)
	}
	srv.SetDown(false)
	srv.SetFault("/servers/getVersion", misptest.Fault{ErrorStatus: 502})
	ck = checkInstance(context.Background(), api, srv.URL())
	if r := condition(ck.Conditions, "Reachable"); r.Reason != ReasonServerError || ck.Transient == nil {
		t.Errorf("502: Reachable %s/%s transient %v", r.Status, r.Reason, ck.Transient)
	}
}
