package misptest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Background jobs: with Options.BackgroundJobs, /events/publish and /events/alert only
// queue a job and answer "Job queued" (background_jobs/api/04); a worker publishes the
// event later. What a production MISP does to those jobs, and the double models:
//
//   - a worker runs them in queue order (SimpleBackgroundJobs: one Redis list per queue,
//     publishes on "prio") at the earliest Options.JobDelay after they were queued;
//   - a job can fail (an exception in the worker: the event stays unpublished, /jobs/index
//     says "Failed") or vanish (a worker killed mid-job, Redis flushed: the job is gone, its
//     row says "Unknown") — JobFaults, decided per job by a seeded generator;
//   - the workers can be down (supervisord stopped, a crash loop): jobs stay queued, nothing
//     runs, and the queue drains in order when they come back — SetWorkersDown;
//   - the queue can be lost as a whole (Redis restarted without persistence) —
//     FlushJobQueue.
//
// /jobs/index is not modelled (the captured MISP answered 500 there, see
// misp/real/README.md). The ground truth for tests is PublishJobs.

// JobStatus is the fate of one background publish job.
type JobStatus string

const (
	JobWaiting   JobStatus = "Waiting"   // queued, not run yet
	JobCompleted JobStatus = "Completed" // ran: the event is published, misp_json sent
	JobFailed    JobStatus = "Failed"    // ran and failed: the event is unchanged
	// JobVanished: the job is gone without running (worker killed, queue flushed). Not a
	// MISP status: MISP shows "Unknown" for a job whose Redis record is gone.
	JobVanished JobStatus = "Vanished"
)

// PublishJob is one background publish (or alert) job.
type PublishJob struct {
	ID        int
	EventUUID string
	Action    string // "publish" or "alert"
	Queued    time.Time
	Done      time.Time // zero while waiting
	Status    JobStatus
}

// JobFaults are the odds that a background job fails or vanishes when a worker takes it.
type JobFaults struct {
	FailRate   float64
	VanishRate float64
}

// jobQueue is the prio queue and its workers.
type jobQueue struct {
	mu     sync.Mutex
	queue  []*jobRec // waiting, oldest first
	all    []*jobRec // every job, in queue order
	down   bool
	faults JobFaults
	rng    *rand.Rand
	wake   chan struct{}
}

type jobRec struct {
	PublishJob
	eventID int
	due     time.Time // real time: when a worker may take it
}

func (q *jobQueue) init(seed uint64) {
	q.rng = rand.New(rand.NewPCG(seed, 0x6a6f6273))
	q.wake = make(chan struct{}, 1)
}

func (q *jobQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// queuePublish queues a publish job for the event (BackgroundJobsTool::enqueue). The
// caller holds s.mu (the event's uuid is read under it).
func (s *Server) queuePublishLocked(ev *eventRec, action string) {
	q := &s.jobq
	q.mu.Lock()
	j := &jobRec{PublishJob: PublishJob{ID: len(q.all) + 1, EventUUID: ev.uuid, Action: action,
		Queued: s.now(), Status: JobWaiting}, eventID: ev.id, due: time.Now().Add(s.opts.JobDelay)}
	q.all = append(q.all, j)
	if s.capacity == nil {
		q.queue = append(q.queue, j)
	}
	q.mu.Unlock()
	if s.capacity != nil {
		// The capacity model's job workers run it, in order, sharing MISP's cores
		// (capacity.go); job faults apply, stopped workers and flushes do not.
		s.capacity.enqueueJob(func() { s.finishJob(j) })
		return
	}
	q.poke()
}

// runJobs is the worker pool: it takes the oldest job once it is due and the workers are
// up, until the server closes. One goroutine is enough: a job's run is instant and due
// times follow the queue order.
func (s *Server) runJobs() {
	defer s.jobs.Done()
	q := &s.jobq
	for {
		q.mu.Lock()
		var head *jobRec
		if !q.down && len(q.queue) > 0 {
			head = q.queue[0]
		}
		q.mu.Unlock()
		if head == nil {
			select {
			case <-q.wake:
				continue
			case <-s.closing:
				return
			}
		}
		if wait := time.Until(head.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.wake: // workers stopped or the queue was flushed meanwhile
				t.Stop()
				continue
			case <-s.closing:
				t.Stop()
				return
			}
		}
		q.mu.Lock()
		if q.down || len(q.queue) == 0 || q.queue[0] != head {
			q.mu.Unlock()
			continue
		}
		q.queue = q.queue[1:]
		q.mu.Unlock()
		s.finishJob(head)
	}
}

// finishJob is a worker taking one job: it fails or vanishes as JobFaults say, else it
// publishes the event; the outcome is recorded for PublishJobs.
func (s *Server) finishJob(j *jobRec) {
	q := &s.jobq
	q.mu.Lock()
	status := JobCompleted
	switch r := q.rng.Float64(); {
	case r < q.faults.VanishRate:
		status = JobVanished
	case r < q.faults.VanishRate+q.faults.FailRate:
		status = JobFailed
	}
	q.mu.Unlock()
	if status == JobCompleted {
		status = s.runPublishJob(j.eventID)
	}
	q.mu.Lock()
	j.Status, j.Done = status, s.now()
	q.mu.Unlock()
}

// runPublishJob is the worker's EventShell::publish: Event::publish() on the event as it is
// now. A deleted event fails the job.
func (s *Server) runPublishJob(eventID int) JobStatus {
	s.mu.Lock()
	ev := s.events[eventID]
	if ev == nil {
		s.mu.Unlock()
		return JobFailed
	}
	m := s.publishLocked(ev)
	s.unlockAndPublish([]Message{m})
	return JobCompleted
}

// SetJobFaults sets the odds that a background job fails or vanishes when a worker takes it.
func (s *Server) SetJobFaults(f JobFaults) {
	s.jobq.mu.Lock()
	s.jobq.faults = f
	s.jobq.mu.Unlock()
}

// SetWorkersDown stops (true) or restarts (false) the background workers. Jobs queued while
// they are down stay waiting and run in queue order once they are back.
func (s *Server) SetWorkersDown(down bool) {
	s.jobq.mu.Lock()
	s.jobq.down = down
	s.jobq.mu.Unlock()
	s.jobq.poke()
}

// FlushJobQueue drops every waiting job, as a Redis restart without persistence does, and
// returns how many vanished.
func (s *Server) FlushJobQueue() int {
	q := &s.jobq
	q.mu.Lock()
	n := len(q.queue)
	now := s.now()
	for _, j := range q.queue {
		j.Status, j.Done = JobVanished, now
	}
	q.queue = nil
	q.mu.Unlock()
	q.poke()
	return n
}

// QueuedJobs is the number of jobs waiting for a worker.
func (s *Server) QueuedJobs() int {
	s.jobq.mu.Lock()
	defer s.jobq.mu.Unlock()
	return len(s.jobq.queue)
}

// PublishJobs is every background publish and alert job so far, in queue order.
func (s *Server) PublishJobs() []PublishJob {
	s.jobq.mu.Lock()
	defer s.jobq.mu.Unlock()
	out := make([]PublishJob, len(s.jobq.all))
	for i, j := range s.jobq.all {
		out[i] = j.PublishJob
	}
	return out
}
