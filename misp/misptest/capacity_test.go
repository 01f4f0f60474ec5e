package misptest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// concurrently sends n getVersion calls at once and returns their statuses.
func concurrently(t *testing.T, s *Server, n int) []int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil).status
		}()
	}
	wg.Wait()
	return statuses
}

func TestCapacityServesWithAFixedWorkerPool(t *testing.T) {
	// Requests hold a worker for 300ms: six sent together meet two workers, so four wait.
	s := newTestServer(t, Options{Capacity: &Capacity{Workers: 2, DefaultService: 300 * time.Millisecond}})
	for i, st := range concurrently(t, s, 6) {
		if st != http.StatusOK {
			t.Fatalf("call %d answered %d", i, st)
		}
	}
	st := s.CapacityStats()
	if st.Served != 6 || st.Refused != 0 || st.MaxQueue != 4 {
		t.Errorf("stats %+v, want 6 served, 0 refused, a queue of 4", st)
	}
	lat := s.Latencies()
	if len(lat) != 6 {
		t.Fatalf("%d latencies recorded, want 6", len(lat))
	}
	// Served two at a time: the last pair waited for two services before its own.
	if lat[5] < 900*time.Millisecond {
		t.Errorf("slowest call took %v, want ≥ 3 services (900ms) behind two workers", lat[5])
	}
	s.ResetStats()
	if st := s.CapacityStats(); st != (CapacityStats{}) || s.Latencies() != nil {
		t.Errorf("ResetStats left %+v, %d latencies", st, len(s.Latencies()))
	}
}

func TestCapacityRefusesWhenTheQueueIsFull(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantBody string
		wantType string
	}{
		{"nginx in front of a saturated php-fpm", 0, "<center>nginx/1.22.1</center>", "text/html"},
		{"MISP's rate limit", http.StatusTooManyRequests, `"message":"Rate limit exceeded."`, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Options{Capacity: &Capacity{Workers: 1, Queue: 1, QueueFullStatus: tt.status,
				DefaultService: 400 * time.Millisecond}})
			var refused []resp
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil)
					if r.status != http.StatusOK {
						mu.Lock()
						refused = append(refused, r)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			// One served, one queued, two refused at once.
			if st := s.CapacityStats(); len(refused) != 2 || st.Served != 2 || st.Refused != 2 {
				t.Fatalf("%d refused, stats %+v; want 2 refused and 2 served", len(refused), st)
			}
			want := tt.status
			if want == 0 {
				want = http.StatusServiceUnavailable
			}
			for _, r := range refused {
				if r.status != want || !strings.Contains(string(r.body), tt.wantBody) || !strings.HasPrefix(r.header.Get("Content-Type"), tt.wantType) {
					t.Errorf("refusal %d %q (%s), want %d with %q", r.status, r.body, r.header.Get("Content-Type"), want, tt.wantBody)
				}
			}
			if s.Calls("/servers/getVersion") != 4 {
				t.Errorf("Calls counts %d, want every call (4)", s.Calls("/servers/getVersion"))
			}
		})
	}
}

func TestCapacityRunsPublishJobsOnTheirOwnWorkersInOrder(t *testing.T) {
	s := newTestServer(t, Options{BackgroundJobs: true, Capacity: &Capacity{Workers: 4, JobWorkers: 1,
		JobService: 300 * time.Millisecond}})
	p := s.AddOrg("P", "")
	var uuids []string
	for range 3 {
		uuids = append(uuids, s.AddEvent(Event{Orgc: p}).UUID)
	}
	for _, u := range uuids {
		r := do(t, s, "POST", "/events/publish/"+u, s.AdminKey(), nil)
		if r.status != http.StatusOK || r.m(t)["message"] != "Job queued" {
			t.Fatalf("publish answered %d %s", r.status, r.body)
		}
	}
	// The answers came before the jobs ran: nothing is published yet, three jobs wait or run.
	if st := s.CapacityStats(); st.JobsDone != 0 || st.MaxJobQueue < 2 {
		t.Errorf("right after the answers: %+v, want no job done and a queue", st)
	}
	published := func(u string) bool { e, _ := s.Event(u); return e.Published }
	if published(uuids[0]) {
		t.Error("event published before its job ran")
	}
	eventually(t, "the first job", func() bool { return published(uuids[0]) })
	if published(uuids[2]) {
		t.Error("the third job ran together with the first: one job worker runs them one at a time")
	}
	eventually(t, "every job", func() bool { return published(uuids[1]) && published(uuids[2]) })
	if st := s.CapacityStats(); st.JobsDone != 3 || st.JobsQueued != 0 {
		t.Errorf("stats %+v, want 3 jobs done, none queued", st)
	}
}

func TestCapacityServiceScaleSlowsMISPDownAndBack(t *testing.T) {
	s := newTestServer(t, Options{Capacity: &Capacity{Workers: 1, DefaultService: 50 * time.Millisecond}})
	call := func() time.Duration {
		s.ResetStats()
		do(t, s, "GET", "/servers/getVersion", s.AdminKey(), nil)
		return s.Latencies()[0]
	}
	if d := call(); d < 50*time.Millisecond {
		t.Errorf("a call took %v, want ≥ its 50ms service", d)
	}
	s.SetServiceScale(8)
	if d := call(); d < 400*time.Millisecond {
		t.Errorf("a call at scale 8 took %v, want ≥ 400ms", d)
	}
	s.SetServiceScale(1)
	if d := call(); d >= 400*time.Millisecond {
		t.Errorf("a call back at scale 1 took %v", d)
	}
}

func TestCapacityCPUSharingSlowsTasksPastTheCores(t *testing.T) {
	cp := newCapacity(Capacity{Workers: 4, Cores: 2, DefaultService: 100 * time.Millisecond}, 1, nil, &sync.WaitGroup{})
	for _, tt := range []struct {
		busy int
		want time.Duration
	}{{1, 100 * time.Millisecond}, {2, 100 * time.Millisecond}, {3, 150 * time.Millisecond}, {4, 200 * time.Millisecond}} {
		if got := cp.serviceLocked(0, tt.busy); got != tt.want {
			t.Errorf("%d busy tasks on 2 cores: %v, want %v", tt.busy, got, tt.want)
		}
	}
	jit := newCapacity(Capacity{DefaultService: 100 * time.Millisecond, Jitter: 0.2}, 1, nil, &sync.WaitGroup{})
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := jit.serviceLocked(0, 1)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 80*time.Millisecond || hi > 120*time.Millisecond || hi-lo < 30*time.Millisecond {
		t.Errorf("jittered service times span [%v, %v], want most of [80ms, 120ms]", lo, hi)
	}
}

func TestWithoutCapacityTheDoubleStaysUnlimited(t *testing.T) {
	s := newTestServer(t, Options{})
	for _, st := range concurrently(t, s, 20) {
		if st != http.StatusOK {
			t.Fatalf("answered %d", st)
		}
	}
	if st := s.CapacityStats(); st != (CapacityStats{}) || s.Latencies() != nil {
		t.Errorf("the default double keeps capacity statistics: %+v", st)
	}
	s.SetServiceScale(10) // a no-op
}
