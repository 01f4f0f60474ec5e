package misptest_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

// A curator test: a trusted partner's event arrives by pull; the code under test tags it
// locally through the REST API; the double's state and counters show what happened.
func Example() {
	s := misptest.NewServer(misptest.Options{}) // Options{ZMQ: true} adds a ZeroMQ PUB at s.ZMQEndpoint()
	defer s.Close()

	partner := s.AddOrg("CIRCL", "55f6ea5e-2c60-40e5-964f-47a8950d210f") // known: no misp_json_organisation
	ev := s.SimulatePull(misptest.Event{Orgc: partner, Published: true, Attributes: 3,
		Tags: []misptest.EventTag{{Name: `workflow:state="incomplete"`}}})
	for _, m := range s.Published() {
		fmt.Println(m.Topic)
	}

	// What the code under test would do, with the key of a host-org publisher.
	key := s.AddUser(s.HostOrg(), misptest.Role{Publish: true, Tagger: true})
	req, _ := http.NewRequest("POST", s.URL()+"/tags/attachTagToObject",
		strings.NewReader(`{"uuid":"`+ev.UUID+`","tag":"admiralty-scale:source-reliability=\"a\"","local":1}`))
	req.Header.Set("Authorization", key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	res.Body.Close()

	after, _ := s.Event(ev.UUID)
	fmt.Println(res.StatusCode, after.Published, after.Tags[1].Name, after.Tags[1].Local)
	fmt.Println(s.Calls("/tags/attachTagToObject"), s.WriteCalls())
	// Output:
	// misp_json_event
	// misp_json_tag
	// misp_json_attribute
	// misp_json_attribute
	// misp_json_attribute
	// misp_json
	// misp_json_event
	// 200 true admiralty-scale:source-reliability="a" true
	// 1 1
}
