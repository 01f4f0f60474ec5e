package misptest

import (
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Capacity makes the double serve like a MISP with finite resources instead of answering
// every call at once (Options.Capacity; nil keeps the zero-latency, unlimited double that
// unit tests use).
//
// The model, from what a real MISP 2.5.1 showed (misp/real/capacity.md): a fixed pool of
// request workers (php-fpm's pm.max_children) takes requests in arrival order from one
// queue; a request holds its worker for its route's service time; background jobs (the
// publishes MISP answers "Job queued" for) wait in their own queue for their own workers.
// Request and job workers share the machine's cores: a task that starts while more tasks
// than cores are busy runs slower by busy/cores (processor sharing, decided when the task
// starts). So latency grows with load (queueing, then CPU sharing), throughput is flat
// past the worker count, writes weigh more than reads, and a publish completes later.
type Capacity struct {
	// Workers serve REST requests; default 2 (the measured MISP's php-fpm pool).
	Workers int
	// Cores are shared by busy request and job workers; default Workers.
	Cores int
	// Queue bounds the requests waiting for a worker; past it a request is refused at once
	// with QueueFullStatus. 0: unbounded (php-fpm's listen backlog is large, and nginx
	// waits for it).
	Queue int
	// QueueFullStatus is 503 (nginx in front of a saturated php-fpm; HTML body) or 429
	// (MISP's JSON rate-limit answer); default 503.
	QueueFullStatus int
	// Service is the time a request of a route ("/events/index") holds its worker when no
	// more tasks than cores are busy; routes not listed take DefaultService.
	Service        map[string]time.Duration
	DefaultService time.Duration
	// Jitter spreads every service time uniformly over ×[1−Jitter, 1+Jitter]; 0 ≤ Jitter < 1.
	Jitter float64
	// JobWorkers run queued publishes (SimpleBackgroundJobs' prio worker); default 1.
	// JobService is one publish job's time (it replaces Options.JobDelay).
	JobWorkers int
	JobService time.Duration
}

// CalibratedCapacity is a MISP 2.5.1 on a 2-core machine with a php-fpm pool of 2 and one
// background worker, as measured in misp/real/capacity.md. How the figures were derived:
//   - light calls: ~70 ms one at a time and ~28–30 calls/s from 2–8 clients: 2 workers at
//     70 ms serve 28.6/s, and two requests on two cores do not slow each other;
//   - the curation mix (attach, remove, publish): 11.7 calls/s from one thread and 14.5/s
//     from 2–8. Under that load the publish jobs pile up, so the job worker is always busy:
//     one thread = 2 busy tasks on 2 cores (no slowdown: 1/88 ms = 11.4/s), two or more =
//     3 busy tasks on 2 cores (×1.5: 2/132 ms = 15.2/s). 88 ms fits both within 5 %;
//   - events/index by eventid answered in 0.03 s under load (×1.5): 20 ms;
//   - a publish job took ~330 ms on the worker (sync/api/63): 300 ms, ×1.5 under load, so
//     at 4.8 events/s the job queue grows and events read unpublished for seconds, as seen;
//   - ±20 % jitter (the real latencies spread; the figures above are means).
func CalibratedCapacity() Capacity {
	write := 88 * time.Millisecond
	return Capacity{
		Workers: 2, Cores: 2,
		Service: map[string]time.Duration{
			"/events/index":              20 * time.Millisecond,
			"/tags/attachTagToObject":    write,
			"/tags/removeTagFromObject":  write,
			"/events/publish":            write,
			"/events/unpublish":          write,
			"/events/alert":              write,
			"/warninglists/add":          write,
			"/warninglists/edit":         write,
			"/warninglists/toggleEnable": write,
			"/warninglists/delete":       write,
		},
		DefaultService: 70 * time.Millisecond,
		Jitter:         0.2,
		JobWorkers:     1,
		JobService:     300 * time.Millisecond,
	}
}

// capacity is the running model.
type capacity struct {
	cfg     Capacity
	closing <-chan struct{}
	jobsWG  *sync.WaitGroup

	mu        sync.Mutex
	rng       *rand.Rand
	scale     float64
	busy      int             // request workers serving
	waiting   []chan struct{} // FIFO of requests waiting for a worker
	jobBusy   int
	jobs      []func()
	stats     CapacityStats
	latencies []time.Duration
}

// CapacityStats is what the capacity model saw since the last ResetStats.
type CapacityStats struct {
	Served   int // requests that got a worker
	Refused  int // requests answered QueueFullStatus
	MaxQueue int // longest wait queue seen
	// JobsDone counts finished jobs; JobsQueued is the job queue's length now, MaxJobQueue
	// its longest.
	JobsDone, JobsQueued, MaxJobQueue int
}

func newCapacity(cfg Capacity, seed uint64, closing <-chan struct{}, jobs *sync.WaitGroup) *capacity {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Cores <= 0 {
		cfg.Cores = cfg.Workers
	}
	if cfg.QueueFullStatus == 0 {
		cfg.QueueFullStatus = http.StatusServiceUnavailable
	}
	if cfg.JobWorkers <= 0 {
		cfg.JobWorkers = 1
	}
	cfg.Jitter = min(max(cfg.Jitter, 0), 0.99)
	return &capacity{cfg: cfg, closing: closing, jobsWG: jobs, scale: 1, rng: rand.New(rand.NewPCG(seed, 0x636170))}
}

// SetServiceScale multiplies every service time (requests and jobs) by f from now on: a
// MISP that slows down (f > 1) or recovers (f = 1) in the middle of a run. No-op without
// Options.Capacity.
func (s *Server) SetServiceScale(f float64) {
	if s.capacity == nil || f <= 0 {
		return
	}
	s.capacity.mu.Lock()
	s.capacity.scale = f
	s.capacity.mu.Unlock()
}

// CapacityStats returns the capacity model's counters (zero without Options.Capacity).
func (s *Server) CapacityStats() CapacityStats {
	if s.capacity == nil {
		return CapacityStats{}
	}
	s.capacity.mu.Lock()
	defer s.capacity.mu.Unlock()
	st := s.capacity.stats
	st.JobsQueued = len(s.capacity.jobs)
	return st
}

// Latencies returns the time each served request spent in the double (queue wait, service
// and handling), sorted, since the last ResetStats; nil without Options.Capacity.
func (s *Server) Latencies() []time.Duration {
	if s.capacity == nil {
		return nil
	}
	s.capacity.mu.Lock()
	out := append([]time.Duration(nil), s.capacity.latencies...)
	s.capacity.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (cp *capacity) resetStats() {
	cp.mu.Lock()
	cp.stats = CapacityStats{}
	cp.latencies = nil
	cp.mu.Unlock()
}

// serve runs handle on a request worker after the route's service time, or refuses the
// call when the queue is full. A caller that goes away while queued is not served.
func (cp *capacity) serve(c *call, route string, handle func()) {
	start := time.Now()
	cp.mu.Lock()
	if cp.busy >= cp.cfg.Workers {
		if cp.cfg.Queue > 0 && len(cp.waiting) >= cp.cfg.Queue {
			cp.stats.Refused++
			cp.mu.Unlock()
			cp.refuse(c)
			return
		}
		ch := make(chan struct{})
		cp.waiting = append(cp.waiting, ch)
		cp.stats.MaxQueue = max(cp.stats.MaxQueue, len(cp.waiting))
		cp.mu.Unlock()
		select {
		case <-ch: // the worker was handed over with busy already counted
		case <-c.r.Context().Done():
			cp.mu.Lock()
			for i, w := range cp.waiting {
				if w == ch {
					cp.waiting = append(cp.waiting[:i], cp.waiting[i+1:]...)
					cp.mu.Unlock()
					return
				}
			}
			cp.mu.Unlock()
			cp.releaseWorker() // handed over as we left
			return
		}
		cp.mu.Lock()
	} else {
		cp.busy++
	}
	d := cp.serviceLocked(cp.cfg.Service[route], cp.busy+cp.jobBusy)
	cp.stats.Served++
	cp.mu.Unlock()

	cp.sleep(d)
	handle()
	cp.releaseWorker()
	cp.mu.Lock()
	cp.latencies = append(cp.latencies, time.Since(start))
	cp.mu.Unlock()
}

// serviceLocked draws one task's time: its base (or DefaultService), the run-time scale,
// the jitter, and the CPU share when more tasks than cores are busy.
func (cp *capacity) serviceLocked(base time.Duration, busy int) time.Duration {
	if base == 0 {
		base = cp.cfg.DefaultService
	}
	f := cp.scale
	if cp.cfg.Jitter > 0 {
		f *= 1 - cp.cfg.Jitter + 2*cp.cfg.Jitter*cp.rng.Float64()
	}
	if busy > cp.cfg.Cores {
		f *= float64(busy) / float64(cp.cfg.Cores)
	}
	return time.Duration(float64(base) * f)
}

func (cp *capacity) releaseWorker() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.waiting) > 0 {
		close(cp.waiting[0]) // the worker passes to the oldest waiter
		cp.waiting = cp.waiting[1:]
		return
	}
	cp.busy--
}

// sleep waits d, or less when the double closes.
func (cp *capacity) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cp.closing:
	}
}

// refuse answers a request the queue has no room for, as the part of MISP that does.
func (cp *capacity) refuse(c *call) {
	status := cp.cfg.QueueFullStatus
	if status == http.StatusTooManyRequests {
		c.w.Header().Set("Retry-After", "1")
		c.errorJSON(status, "Rate limit exceeded.")
		return
	}
	// nginx's own page (the captures' Server header), as faults.go writes it.
	text := http.StatusText(status)
	c.w.Header().Set("Content-Type", "text/html")
	c.w.WriteHeader(status)
	c.status = status
	c.w.Write([]byte("<html>\r\n<head><title>" + strconv.Itoa(status) + " " + text + "</title></head>\r\n<body>\r\n<center><h1>" +
		strconv.Itoa(status) + " " + text + "</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"))
}

// enqueueJob queues a background job (a publish) for the job workers. Jobs run in order;
// one still queued when the double closes never runs, as a job whose worker was stopped.
func (cp *capacity) enqueueJob(run func()) {
	cp.mu.Lock()
	cp.jobs = append(cp.jobs, run)
	cp.stats.MaxJobQueue = max(cp.stats.MaxJobQueue, len(cp.jobs))
	start := cp.jobBusy < cp.cfg.JobWorkers
	if start {
		cp.jobBusy++
	}
	cp.mu.Unlock()
	if start {
		cp.jobsWG.Add(1)
		go cp.jobWorker()
	}
}

// jobWorker runs queued jobs until the queue is empty.
func (cp *capacity) jobWorker() {
	defer cp.jobsWG.Done()
	for {
		cp.mu.Lock()
		if len(cp.jobs) == 0 {
			cp.jobBusy--
			cp.mu.Unlock()
			return
		}
		run := cp.jobs[0]
		cp.jobs = cp.jobs[1:]
		d := cp.serviceLocked(cp.cfg.JobService, cp.busy+cp.jobBusy)
		cp.mu.Unlock()
		select {
		case <-cp.closing:
			return
		default:
		}
		cp.sleep(d)
		select {
		case <-cp.closing:
			return
		default:
		}
		run()
		cp.mu.Lock()
		cp.stats.JobsDone++
		cp.mu.Unlock()
	}
}
