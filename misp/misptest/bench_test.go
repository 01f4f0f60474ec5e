package misptest

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkEventsIndexMinimal measures the double's cost of the curator's cheapest metadata
// call, to tell it apart from the code under test in load tests.
func BenchmarkEventsIndexMinimal(b *testing.B) {
	s := NewServer(Options{})
	defer s.Close()
	p := s.AddOrg("P", "")
	ev := s.SimulatePull(Event{Orgc: p, Published: true, Attributes: 5})
	for range 500 {
		s.AddEvent(Event{Orgc: p, Attributes: 2})
	}
	body := []byte(`{"eventid":"` + ev.UUID + `","minimal":1}`)
	client := &http.Client{}
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("POST", s.URL()+"/events/index", bytes.NewReader(body))
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", s.AdminKey())
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// BenchmarkSimulatePull measures one pull of a 10-attribute event (state plus 15 messages).
func BenchmarkSimulatePull(b *testing.B) {
	s := NewServer(Options{})
	defer s.Close()
	p := s.AddOrg("P", "")
	tags := []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}
	for b.Loop() {
		s.SimulatePull(Event{Orgc: p, Published: true, Attributes: 10, Tags: tags})
	}
}
