package misptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/misptrust/misp-trust-operator/misp"
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

// BenchmarkCalibratedMISP replays the measurements of misp/real/capacity.md against
// CalibratedCapacity, through the operator's MISP client with no client-side limit (a
// tight client): 30 pulled high-trust events curated by 1–8 threads (attach the local
// tags in one call, remove the partner's workflow:state="incomplete", publish: 3 calls
// each), and getVersion calls (light). Compare calls/s with the real MISP: 11.7 (1 thread)
// and 14.5 (2–8 threads) for the mix; ~14 and ~28–30 for light calls.
//
//	go test -run '^$' -bench CalibratedMISP -benchtime 1x ./misp/misptest/
func BenchmarkCalibratedMISP(b *testing.B) {
	for _, mix := range []string{"curation", "light"} {
		for _, threads := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/threads=%d", mix, threads), func(b *testing.B) {
				var calls, events int
				var elapsed time.Duration
				for b.Loop() {
					n, e, d := calibratedRun(b, mix, threads)
					calls, events, elapsed = calls+n, events+e, elapsed+d
				}
				b.ReportMetric(float64(calls)/elapsed.Seconds(), "calls/s")
				if events > 0 {
					b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
				}
			})
		}
	}
}

func calibratedRun(b *testing.B, mix string, threads int) (calls, events int, elapsed time.Duration) {
	capa := CalibratedCapacity()
	s := NewServer(Options{BackgroundJobs: true, Capacity: &capa})
	defer s.Close()
	c, err := misp.New(misp.Options{URL: s.URL(), APIKey: s.AdminKey(), QPS: -1, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	partner := s.AddOrg("PARTNER", "")
	var work []string
	n := 120
	if mix == "curation" {
		n = 30
		for range n {
			e := s.SimulatePull(Event{Orgc: partner, Published: true, Attributes: 3,
				Tags: []EventTag{{Name: "tlp:green"}, {Name: `workflow:state="incomplete"`}}})
			work = append(work, e.UUID)
		}
	} else {
		work = make([]string, n)
	}
	ctx := context.Background()
	next := make(chan string, len(work))
	for _, u := range work {
		next <- u
	}
	close(next)
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				var err error
				if mix == "light" {
					_, err = c.Version(ctx)
				} else if err = c.AttachTags(ctx, u, []string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, true); err == nil {
					if err = c.RemoveTag(ctx, u, `workflow:state="incomplete"`); err == nil {
						_, err = c.Publish(ctx, u)
					}
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed = time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("%d failures", failed.Load())
	}
	if mix == "curation" {
		return 3 * n, n, elapsed
	}
	return n, 0, elapsed
}
