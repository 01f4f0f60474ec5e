package misptest

import (
	"testing"
	"time"
)

// queuedPublishes publishes each event through the REST API with background jobs on and
// checks the answer is "Job queued".
func queuedPublishes(t *testing.T, s *Server, events ...Event) {
	t.Helper()
	for _, e := range events {
		r := do(t, s, "POST", "/events/publish/"+e.UUID, s.AdminKey(), nil)
		if r.status != 200 || r.m(t)["message"] != "Job queued" {
			t.Fatalf("publish %s: %d %s", e.UUID, r.status, r.body)
		}
	}
}

func unpublishedEvent(s *Server) Event {
	return s.AddEvent(Event{Orgc: Org{UUID: "1521ae8b-48de-4766-8b2a-fdecef763fa8", Name: "PARTNER-HIGH"}, Locked: true, Attributes: 1})
}

func jobStatuses(s *Server) map[string]JobStatus {
	out := map[string]JobStatus{}
	for _, j := range s.PublishJobs() {
		out[j.EventUUID] = j.Status
	}
	return out
}

func published(s *Server, uuid string) bool {
	e, _ := s.Event(uuid)
	return e.Published
}

func TestBackgroundJobs(t *testing.T) {
	t.Run("workers down: jobs stay queued and run in order when the workers come back", func(t *testing.T) {
		s := newTestServer(t, Options{BackgroundJobs: true, JobDelay: 10 * time.Millisecond})
		a, b := unpublishedEvent(s), unpublishedEvent(s)
		s.SetWorkersDown(true)
		before := len(s.Published())
		queuedPublishes(t, s, a, b)
		time.Sleep(200 * time.Millisecond)
		if published(s, a.UUID) || published(s, b.UUID) || s.QueuedJobs() != 2 {
			t.Fatalf("ran with the workers down: queued %d, jobs %v", s.QueuedJobs(), s.PublishJobs())
		}
		s.SetWorkersDown(false)
		eventually(t, "the queue to drain", func() bool { return s.QueuedJobs() == 0 && published(s, b.UUID) })
		jobs := s.PublishJobs()
		if len(jobs) != 2 || jobs[0].EventUUID != a.UUID || jobs[0].Status != JobCompleted || jobs[1].Status != JobCompleted {
			t.Fatalf("jobs %+v", jobs)
		}
		msgs := s.Published()[before:]
		if len(msgs) != 2 || payload(t, msgs[0])["Event"].(map[string]any)["uuid"] != a.UUID {
			t.Fatalf("misp_json messages out of queue order: %v", topics(msgs))
		}
	})
	t.Run("a flushed queue loses its jobs: nothing is published, ever", func(t *testing.T) {
		s := newTestServer(t, Options{BackgroundJobs: true, JobDelay: 10 * time.Millisecond})
		a := unpublishedEvent(s)
		s.SetWorkersDown(true)
		queuedPublishes(t, s, a)
		if n := s.FlushJobQueue(); n != 1 {
			t.Fatalf("flushed %d jobs, want 1", n)
		}
		s.SetWorkersDown(false)
		time.Sleep(200 * time.Millisecond)
		if published(s, a.UUID) || jobStatuses(s)[a.UUID] != JobVanished {
			t.Fatalf("published %v, jobs %+v", published(s, a.UUID), s.PublishJobs())
		}
	})
	t.Run("job faults: failed and vanished jobs leave the event unpublished, seeded", func(t *testing.T) {
		run := func(seed uint64) []JobStatus {
			s := newTestServer(t, Options{BackgroundJobs: true, JobDelay: time.Millisecond, Seed: seed})
			s.SetJobFaults(JobFaults{FailRate: 0.3, VanishRate: 0.3})
			var events []Event
			for range 30 {
				events = append(events, unpublishedEvent(s))
			}
			queuedPublishes(t, s, events...)
			eventually(t, "every job to be taken", func() bool { return s.QueuedJobs() == 0 })
			var out []JobStatus
			for i, j := range s.PublishJobs() {
				if (j.Status == JobCompleted) != published(s, events[i].UUID) {
					t.Fatalf("job %+v, event published %v", j, published(s, events[i].UUID))
				}
				out = append(out, j.Status)
			}
			return out
		}
		a, b := run(3), run(3)
		count := map[JobStatus]int{}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("same seed, different fates:\n%v\n%v", a, b)
			}
			count[a[i]]++
		}
		if count[JobFailed] == 0 || count[JobVanished] == 0 || count[JobCompleted] == 0 {
			t.Fatalf("fates %v", count)
		}
	})
}
