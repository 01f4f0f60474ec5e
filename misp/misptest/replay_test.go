package misptest

import (
	"testing"
	"time"
)

// Replay tests: each scenario rebuilds the state a captured session had on the real MISP
// 2.5.1 (misp/testdata/real, copied from /work/shared/misp/real), sends the captured request
// and compares the status, headers, field names and their order, JSON types, `[]` versus `{}`,
// messages and every value the double reproduces (ids, flags, counts, tag names), plus the
// ZeroMQ messages the call caused. Values that legitimately differ (uuids of generated
// attributes, timestamps, dates, cookies, e-mail addresses) are compared by type only.
//
// Captures NOT modelled, and why:
//
//	| capture(s)                                                   | reason                                                        |
//	|--------------------------------------------------------------|---------------------------------------------------------------|
//	| api/06–16 taxonomies/*, 17–18 tags/search, tags/index         | taxonomy management is not used by the operator               |
//	| api/19 warninglists/update, zmq/19                            | the double seeds 5 default lists instead of loading 136       |
//	| api/31, 63, 64 events/add; 35 events/edit; 65 events/delete   | event authoring is the partner's job: Simulate*/AddEvent      |
//	| api/34, 48, 66 attributes/add|edit|delete; 49 sightings/add   | attribute authoring and sightings are not modelled            |
//	| api/44 tags/add, 45 tags/view                                 | AddTag creates tags directly                                  |
//	| api/60, warninglists_extra/api/18–19 attributes/restSearch    | attribute search is not modelled                              |
//	| warninglists_extra/api/16–17, 20 (warninglist hits on events  | generated attributes cannot carry chosen values; enforce-     |
//	|   with chosen values, enforceWarninglist)                      |   Warninglist is not modelled                                 |
//	| objects/*                                                     | MISP objects and object references are not modelled           |
//	| background_jobs/api/02, 07, 08 (events/add, jobs, workers)    | event authoring; 07/08 are 500s of a broken install           |
//	| sync/api/*_B_* (instance B)                                   | the partner side: replaced by SimulatePull/SimulatePush       |
//	| sync/api/26–33, 56, 66–67, 85–89 (taxonomies, organisations,  | administration of the instance (AddOrg/AddUser instead)       |
//	|   servers, admin users, auth keys)                             |                                                               |
//	| sync/api/34, 37, 38, 41, 42, 45, 48, 83, 109, 116, 119, 123,  | /servers/pull and the CLI: replaced by SimulatePull*,         |
//	|   127 (the REST/CLI answers of pulls)                          |   whose ZeroMQ sequences ARE replayed below                   |
//	| sync/zmq/98 push/full no-op, 38 pull no-op                    | nothing is published; covered by behaviour tests              |
//	| misp_json_audit, misp_json_user (every zmq/ file)              | audit and user notifications are not modelled                 |
//	| "attached to attribute" tags in synchronised events            | attribute tags of synchronised events are not modelled        |

// TestReplayBasics covers authentication, identity and 404s (api/01–05, 61, 62).
func TestReplayBasics(t *testing.T) {
	w := newWorld(t, Options{})
	r := defaultRules()
	w.replay("api/01_servers_getVersion.json", step{rules: r})
	w.replay("api/02_servers_getVersion_badkey.json", step{rules: r, sameLength: true})
	w.replay("api/03_servers_getVersion_nokey.json", step{rules: r, sameLength: true})
	w.replay("api/04_servers_getPyMISPVersion.json", step{rules: r, sameLength: true})
	w.replay("api/05_users_view_me.json", step{rules: r})
	w.replay("api/61_events_view_404.json", step{rules: r, sameLength: true})
	w.replay("api/62_events_publish_404.json", step{rules: r, sameLength: true})
	w.replay("background_jobs/api/01_servers_getVersion.json", step{rules: r})
}

// TestReplayWarninglists follows the main run's warninglist session (api/20–30, 68).
func TestReplayWarninglists(t *testing.T) {
	w := newWorld(t, Options{})
	r := defaultRules()
	w.replay("api/20_warninglists_index.json", step{rules: r.withLenFree(".Warninglists")})
	w.replay("api/21_warninglists_toggleEnable_rfc1918.json", step{rules: r, sameLength: true, zmq: "zmq/21_warninglists_toggleEnable_rfc1918.json"})
	w.replay("api/22_warninglists_index_enabled.json", step{rules: r, sameLength: true})
	w.replay("api/23_warninglists_index_search.json", step{rules: r, sameLength: true})
	w.replay("api/24_warninglists_add_custom.json", step{rules: r, sameLength: true, zmq: "zmq/24_warninglists_add_custom.json"})
	w.replay("api/25_warninglists_add_custom_invalid.json", step{rules: r, sameLength: true})
	w.replay("api/26_warninglists_view_custom.json", step{rules: r})
	w.replay("api/27_warninglists_toggleEnable_custom.json", step{rules: r, sameLength: true, zmq: "zmq/27_warninglists_toggleEnable_custom.json"})
	w.replay("api/28_warninglists_edit_custom.json", step{rules: r, sameLength: true, zmq: "zmq/28_warninglists_edit_custom.json"})
	w.replay("api/29_warninglists_checkValue.json", step{rules: r, sameLength: true})
	w.replay("api/30_warninglists_checkValue_get.json", step{rules: r, sameLength: true})
	w.replay("api/68_warninglists_delete_custom.json", step{rules: r})
}

// TestReplayWarninglistsExtra covers every list type, the checkValue input forms and the
// stale cache after a delete (warninglists_extra/).
func TestReplayWarninglistsExtra(t *testing.T) {
	w := newWorld(t, Options{})
	r := defaultRules()
	// State left by the main run: rfc1918 enabled, custom list 137 created then deleted.
	if got := do(t, w.s, "POST", "/warninglists/toggleEnable", w.s.AdminKey(), map[string]any{"id": "101", "enabled": 1}); got.status != 200 {
		t.Fatalf("enable rfc1918: %d", got.status)
	}
	w.s.AddWarninglist(WL{ID: "137", Name: "Local test list", Description: "x", Entries: []WLEntry{{Value: "x"}}})
	w.s.DeleteWarninglistUI("137")

	x := "warninglists_extra/"
	w.replay(x+"api/01_warninglists_add_custom_invalid_category.json", step{rules: r, sameLength: true})
	for _, n := range []string{"02_warninglists_add_custom_cidr", "03_warninglists_toggleEnable_custom_cidr",
		"04_warninglists_add_custom_hostname", "05_warninglists_toggleEnable_custom_hostname",
		"06_warninglists_add_custom_substring", "07_warninglists_toggleEnable_custom_substring",
		"08_warninglists_add_custom_regex", "09_warninglists_toggleEnable_custom_regex",
		"10_warninglists_add_custom_string", "11_warninglists_toggleEnable_custom_string"} {
		w.replay(x+"api/"+n+".json", step{rules: r, sameLength: true, zmq: x + "zmq/" + n + ".json"})
	}
	w.replay(x+"api/12_warninglists_view_custom_cidr.json", step{rules: r, sameLength: true})
	w.replay(x+"api/13_warninglists_checkValue_all_types.json", step{rules: r, sameLength: true})
	w.replay(x+"api/14_warninglists_checkValue_object_form.json", step{rules: r, sameLength: true})
	w.replay(x+"api/15_warninglists_checkValue_single_string.json", step{rules: r, sameLength: true})
	w.replay(x+"api/21_warninglists_toggleEnable_disable_cidr.json", step{rules: r, sameLength: true, zmq: x + "zmq/21_warninglists_toggleEnable_disable_cidr.json"})
	w.replay(x+"api/22_warninglists_checkValue_after_disable.json", step{rules: r, sameLength: true})
	w.replay(x+"api/23_warninglists_delete_custom_hostname.json", step{rules: r})
	w.replay(x+"api/24_warninglists_checkValue_after_delete.json", step{rules: r, sameLength: true})
	w.replay(x+"api/25_warninglists_view_deleted.json", step{rules: r, sameLength: true})
	w.replay(x+"api/26_warninglists_index_after.json", step{rules: r.withLenFree(".Warninglists")})
}

// TestReplayEventsAndTags follows the main run on event 1 (api/32–59): views, every tag
// call, publish (synchronous), unpublish, alert, index and restSearch, with their ZeroMQ.
func TestReplayEventsAndTags(t *testing.T) {
	w := newWorld(t, Options{})
	r := defaultRules()
	const ev1 = "d2b6214c-3610-45f7-b4f6-03255121e6aa"
	w.s.AddEvent(Event{ID: "1", UUID: ev1, Info: "client verification event", Date: "2024-10-21",
		Distribution: "0", Attributes: 3, Tags: []EventTag{{Name: "tlp:amber"}}})
	w.replay("api/32_events_view.json", step{rules: r})
	w.replay("api/33_events_view_by_uuid.json", step{rules: r})
	// api/34: attribute 4, the target of the attribute tag of api/39.
	w.subst["cecde717-aada-47ff-b087-1ef985048ac7"] = w.addAttributes(ev1, 1)[0]
	w.replay("api/36_tags_attachTagToObject_event_admiralty.json", step{rules: r, sameLength: true, zmq: "zmq/36_tags_attachTagToObject_event_admiralty.json"})
	w.replay("api/37_tags_attachTagToObject_event_workflow.json", step{rules: r, sameLength: true, zmq: "zmq/37_tags_attachTagToObject_event_workflow.json"})
	w.replay("api/38_tags_attachTagToObject_event_local_new.json", step{rules: r, sameLength: true, zmq: "zmq/38_tags_attachTagToObject_event_local_new.json"})
	w.replay("api/39_tags_attachTagToObject_attribute.json", step{rules: r, sameLength: true, zmq: "zmq/39_tags_attachTagToObject_attribute.json"})
	w.replay("api/40_tags_attachTagToObject_already_attached.json", step{rules: r, sameLength: true})
	w.replay("api/41_tags_attachTagToObject_badtag_id.json", step{rules: r, sameLength: true})
	w.replay("api/42_tags_removeTagFromObject.json", step{rules: r, sameLength: true, zmq: "zmq/42_tags_removeTagFromObject.json"})
	w.replay("api/43_tags_attachTagToObject_event_workflow_complete.json", step{rules: r, sameLength: true, zmq: "zmq/43_tags_attachTagToObject_event_workflow_complete.json"})
	if id := w.s.AddTag("client-verification:global-tag", "#ff0000"); id != "56" { // api/44
		t.Fatalf("new tag id %s, captured 56", id)
	}
	w.replay("api/46_tags_attachTagToObject_by_id.json", step{rules: r, sameLength: true, zmq: "zmq/46_tags_attachTagToObject_by_id.json"})
	w.replay("api/47_tags_attachTagToObject_multi.json", step{rules: r, sameLength: true, zmq: "zmq/47_tags_attachTagToObject_multi.json"})
	w.replay("api/50_events_view_before_publish.json", step{rules: r})
	w.replay("api/51_events_publish.json", step{rules: r, sameLength: true, zmq: "zmq/51_events_publish.json"})
	w.replay("api/52_events_publish_again.json", step{rules: r, sameLength: true, zmq: "zmq/52_events_publish_again.json"})
	w.replay("api/53_events_view_after_publish.json", step{rules: r})
	w.replay("api/54_events_unpublish.json", step{rules: r, sameLength: true, zmq: "zmq/54_events_unpublish.json"})
	w.replay("api/55_events_alert.json", step{rules: r, sameLength: true, zmq: "zmq/55_events_alert.json"})
	w.replay("api/56_events_index.json", step{rules: r})
	w.replay("api/57_events_index_filtered.json", step{rules: r})
	w.replay("api/58_events_restSearch_tags.json", step{rules: r})
	w.replay("api/59_events_restSearch.json", step{rules: r})
}

// TestReplayBackgroundJobs: publish and alert answer "Job queued" and misp_json follows
// (background_jobs/).
func TestReplayBackgroundJobs(t *testing.T) {
	w := newWorld(t, Options{BackgroundJobs: true, JobDelay: 50 * time.Millisecond})
	r := defaultRules()
	w.s.AddEvent(Event{ID: "3", UUID: "e4f3b080-6dc4-44aa-af4b-40675a6f9312", Info: "background-jobs publish test",
		Distribution: "0", Attributes: 1})
	b := "background_jobs/"
	w.replay(b+"api/03_tags_attachTagToObject_event_admiralty.json", step{rules: r, sameLength: true, zmq: b + "zmq/03_tags_attachTagToObject_event_admiralty.json"})
	w.replay(b+"api/04_events_publish_background.json", step{rules: r, sameLength: true, zmq: b + "zmq/04_events_publish_background.json"})
	w.replay(b+"api/05_events_view_after_background_publish.json", step{rules: r})
	w.replay(b+"api/06_events_alert_background.json", step{rules: r, sameLength: true, zmq: b + "zmq/06_events_alert_background.json"})
}

// The partner events of the sync captures, with their uuids and ids on instance A.
var (
	partnerHigh = Org{Name: "PARTNER-HIGH", UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8"}
	partnerSub  = Org{Name: "PARTNER-SUB", UUID: "ae01a99a-c08b-4ac3-9e55-69166dad84e9"}
	syncTags    = []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}, {Name: `admiralty-scale:source-reliability="c"`, Local: true}}
)

const (
	e1 = "853475bb-cc6b-4e07-b345-ed9e47520557"
	e2 = "4cc5acac-5d94-4185-936a-81f4869a8698"
	e3 = "468920c3-40d5-470d-b8b7-9e703430c906"
	e4 = "4fa76b69-216d-4b8f-b0d0-8df6fb5717dd"
	e5 = "96bbbbaf-df37-4199-abc7-502dba74ece7"
	e6 = "80c2942d-6937-4e47-96f0-986d4d74066e"
)

// TestReplaySync replays instance A of misp/real/sync: every pull and push ZeroMQ sequence,
// the state after them, the admin's and the publisher's tag and publish calls, and a pull
// bringing a removed global tag back.
func TestReplaySync(t *testing.T) {
	w := newWorld(t, Options{BackgroundJobs: true, JobDelay: 50 * time.Millisecond})
	r := defaultRules()
	z := "sync/zmq/"
	a := "sync/api/"
	w.s.AddOrg(partnerHigh.Name, partnerHigh.UUID) // api/30: id 2

	// api/34: a full pull of three new published events, newest first.
	m := w.mark()
	w.s.SimulatePull(Event{ID: "11", UUID: e3, Orgc: partnerSub, Published: true, Attributes: 2, Tags: syncTags[:2]})
	w.s.SimulatePull(Event{ID: "12", UUID: e2, Orgc: partnerHigh, Published: true, Attributes: 2, Tags: syncTags[:2]})
	w.s.SimulatePull(Event{ID: "13", UUID: e1, Orgc: partnerHigh, Published: true, Attributes: 3, Tags: syncTags})
	w.expectZMQ(z+"34_A_servers_pull_B_full_new.json", m, r, dropAttributeTags)

	pullEdit := func(rel, uuid string, remoteID int, mutate func(*Event)) {
		t.Helper()
		m := w.mark()
		if remoteID > 0 {
			w.s.SimulatePullEditByID(uuid, remoteID, mutate)
		} else {
			w.s.SimulatePullEdit(uuid, mutate)
		}
		w.expectZMQ(z+rel, m, r, dropAttributeTags)
	}
	addOne := func(e *Event) { e.Attributes++ }
	pullEdit("37_A_servers_pull_B_full_edit.json", e1, 0, addOne)
	pullEdit("41_A_servers_pull_B_by_uuid_e2_edit.json", e2, 0, addOne)
	m = w.mark()
	w.s.SimulatePull(Event{ID: "14", UUID: e4, Orgc: partnerHigh, Published: false, Attributes: 1, Tags: syncTags[:2]})
	w.expectZMQ(z+"42_A_servers_pull_B_by_uuid_e4_new_unpublished.json", m, r, nil)
	pullEdit("45_A_servers_pull_B_by_id_e3_edit.json", e3, 3, addOne)
	m = w.mark()
	w.s.SimulatePullByID(Event{ID: "15", UUID: e5, Orgc: partnerHigh, Published: true, Attributes: 1, Tags: syncTags[:2]}, 5)
	w.expectZMQ(z+"48_A_servers_pull_B_by_id_e5_new.json", m, r, nil)

	// The state after the pulls (api/49–55).
	for _, n := range []string{"49_A_events_view_pulled_e1", "50_A_events_view_pulled_e2", "51_A_events_index_eventid_e1",
		"52_A_events_index_eventid_e1_minimal", "53_A_events_restSearch_e1_metadata", "54_A_events_view_pulled_e4_unpublished",
		"55_A_events_view_pulled_e3_PARTNER-SUB"} {
		w.replay(a+n+".json", step{rules: r})
	}

	// The site admin curates e1 (api/57–65).
	w.replay(a+"57_A_admin_tag_e1_local_admiralty_a.json", step{rules: r, sameLength: true, zmq: z + "57_A_admin_tag_e1_local_admiralty_a.json"})
	w.replay(a+"58_A_e1_after_local_tag.json", step{rules: r})
	w.replay(a+"59_A_admin_remove_global_workflow_incomplete_e1.json", step{rules: r, sameLength: true, zmq: z + "59_A_admin_remove_global_workflow_incomplete_e1.json"})
	w.replay(a+"60_A_e1_after_remove_global.json", step{rules: r})
	w.replay(a+"61_A_admin_tag_e1_local_workflow_complete.json", step{rules: r, sameLength: true, zmq: z + "61_A_admin_tag_e1_local_workflow_complete.json"})
	w.replay(a+"62_A_e1_after_local_complete.json", step{rules: r})
	w.replay(a+"63_A_admin_publish_e1.json", step{rules: r, sameLength: true, zmq: z + "63_A_admin_publish_e1.json"})
	w.replay(a+"64_A_e1_after_publish.json", step{rules: r})
	w.replay(a+"65_A_events_view_e1_after_admin_changes.json", step{rules: r})

	// A publisher of the host org on e2 (api/66–80).
	w.keys["<API key: A publisher (non-admin)>"] = w.s.AddUser(w.s.HostOrg(), Role{Publish: true, Tagger: true})
	w.replay(a+"68_A_pub_users_view_me.json", step{rules: r})
	w.replay(a+"69_A_pub_tag_e2_local_admiralty_a.json", step{rules: r, sameLength: true, zmq: z + "69_A_pub_tag_e2_local_admiralty_a.json"})
	w.replay(a+"70_A_e2_after_pub_local_tag.json", step{rules: r})
	w.replay(a+"71_A_pub_remove_global_workflow_incomplete_e2.json", step{rules: r, sameLength: true})
	w.replay(a+"72_A_e2_after_pub_remove_global.json", step{rules: r})
	w.replay(a+"73_A_pub_tag_e2_local_workflow_complete.json", step{rules: r, sameLength: true, zmq: z + "73_A_pub_tag_e2_local_workflow_complete.json"})
	w.replay(a+"74_A_pub_tag_e2_global_workflow_complete.json", step{rules: r, sameLength: true})
	w.replay(a+"75_A_e2_after_pub_local_complete.json", step{rules: r})
	w.replay(a+"76_A_pub_publish_e2.json", step{rules: r, sameLength: true})
	w.replay(a+"77_A_pub_publish_e2_by_uuid.json", step{rules: r, sameLength: true})
	w.replay(a+"78_A_e2_after_pub_publish_attempt.json", step{rules: r})
	w.replay(a+"79_A_admin_tag_e2_global_custom.json", step{rules: r, sameLength: true, zmq: z + "79_A_admin_tag_e2_global_custom.json"})
	w.replay(a+"80_A_e2_after_admin_global_tag.json", step{rules: r})

	// The partner edits e1 again: its global workflow tag comes back, local tags stay (api/83–84).
	pullEdit("83_A_servers_pull_B_full_edit_after_local_changes.json", e1, 0, addOne)
	w.replay(a+"84_A_e1_after_second_pull.json", step{rules: r})

	// Pushes (api/92–108): no *_from_connected_server, owner = the sync user's org.
	m = w.mark()
	w.s.SimulatePush(Event{ID: "16", UUID: e6, Orgc: partnerHigh, Published: true, Attributes: 2, Tags: syncTags})
	w.expectZMQ(z+"92_B_events_publish_e6_push_new.json", m, r, dropAttributeTags)
	w.replay(a+"93_A_e6_after_push_new.json", step{rules: r})
	w.replay(a+"94_A_events_view_pushed_e6.json", step{rules: r})
	pushEdit := func(rel, uuid string, mutate func(*Event)) {
		t.Helper()
		m := w.mark()
		w.s.SimulatePushEdit(uuid, mutate)
		w.expectZMQ(z+rel, m, r, dropAttributeTags)
	}
	pushEdit("96_B_events_publish_e6_push_edit.json", e6, addOne)
	w.replay(a+"97_A_e6_after_push_edit.json", step{rules: r})
	pushEdit("100_B_events_publish_e1_push_edit_of_pulled_event.json", e1, addOne)
	w.replay(a+"101_A_e1_after_push_edit.json", step{rules: r})
	pushEdit("105_B_events_publish_e5_again.json", e5, func(e *Event) { e.SoftDeletedAttributes = 1 })
	pushEdit("108_B_events_publish_e3_third.json", e3, func(e *Event) { e.EditedAttributes = 1 })
	w.replay(a+"110_A_e5_after_cli_pull.json", step{rules: r}) // api/109 found nothing left to pull

	// More pulls (api/109–128): a soft delete, then three edits of e2.
	pullEdit("116_A_cli_cake_Server_pull_full_b.json", e5, 0, func(e *Event) { e.SoftDeletedAttributes = 1 })
	for _, n := range []struct{ pull, after string }{
		{"119_A_servers_pull_B_full_queued_setting_refused", "120_A_e2_after_sync_pull"},
		{"123_A_servers_pull_B_full_queued_setting_refused", "124_A_e2_after_sync_pull2"},
		{"127_A_servers_pull_B_full_synchronous", "128_A_e2_after_sync_pull3"},
	} {
		pullEdit(n.pull+".json", e2, 0, addOne)
		w.replay(a+n.after+".json", step{rules: r})
	}
}
