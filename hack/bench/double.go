package main

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Planned is one event the double simulated and what the bench expects of it.
type Planned struct {
	UUID    string
	Class   engine.Class
	Publish bool
}

// Stats is what the double saw during the measured phase.
type Stats struct {
	Calls         int
	Bytes         int64
	BigEventBytes int64
	WrongState    int
	CPUSeconds    float64 // the double's process CPU (child mode only)
}

// double is the MISP side of the bench: misptest, in this process or in a child.
type double interface {
	URL() string
	Key() string
	// Plan is what was simulated, Frames how many ZeroMQ frames it produced.
	Plan() []Planned
	Frames() int
	// Next returns the next frame, as a subscriber receives it; io.EOF after the last.
	Next() ([]byte, error)
	// Stats ends the measured phase.
	Stats() (Stats, error)
	Close()
}

// orgPools derives the organisations from the seed, the same way in both processes:
// all[i] for the index (even: high, odd: medium), 64 of each for the events, and 64
// untrusted ones.
func orgPools(seed uint64, n int) (all, high, medium, untrusted []string) {
	rng := rand.New(rand.NewPCG(seed, 11))
	all = make([]string, n)
	for i := range all {
		all[i] = uuidFrom(rng)
	}
	for i := 0; i < 64 && 2*i+1 < n; i++ {
		high = append(high, all[2*i])
		medium = append(medium, all[2*i+1])
		untrusted = append(untrusted, uuidFrom(rng))
	}
	return all, high, medium, untrusted
}

// generate lets the double simulate c.events partner events and returns every ZeroMQ
// frame it published, in order.
func generate(srv *misptest.Server, c config) ([]Planned, string, [][]byte, error) {
	var frames [][]byte
	emit := func(f []byte) error {
		frames = append(frames, f)
		return nil
	}
	_, high, medium, untrusted := orgPools(c.seed, c.orgs)
	rng := rand.New(rand.NewPCG(c.seed, 7))
	var plan []Planned
	cursor := 0
	var lastPayload *byte
	collect := func() error {
		all := srv.Published()
		from := cursor
		if from > len(all) || (from > 0 && lastPayload != nil && &all[from-1].Payload[0] != lastPayload) {
			// The double trimmed its message log: find the last message taken.
			from = -1
			for i := len(all) - 1; i >= 0; i-- {
				if len(all[i].Payload) > 0 && &all[i].Payload[0] == lastPayload {
					from = i + 1
					break
				}
			}
			if from < 0 {
				return errors.New("lost track of the double's message log")
			}
		}
		for _, m := range all[from:] {
			if err := emit(m.Frame()); err != nil {
				return err
			}
		}
		cursor = len(all)
		if len(all) > 0 && len(all[len(all)-1].Payload) > 0 {
			lastPayload = &all[len(all)-1].Payload[0]
		}
		return nil
	}
	tags := []misptest.EventTag{{Name: "tlp:green"}, {Name: trust.TagWorkflowIncomplete}}
	bigUUID := ""
	for i := 0; i < c.events; i++ {
		e := misptest.Event{Published: true, Attributes: 1, Tags: tags}
		var p Planned
		pick := func(pool []string) { e.Orgc = misptest.Org{UUID: pool[rng.IntN(len(pool))]} }
		big := c.big > 0 && i == c.events/2
		switch kind := i % 4; {
		case big:
			p.Class, p.Publish = engine.ClassTagPublish, true
			pick(high)
			e.Attributes = c.big
			e = srv.SimulatePull(e)
			bigUUID = e.UUID
		case kind == 0:
			pick(untrusted)
			p.Class = engine.ClassUntrustedPulled
			e = srv.SimulatePull(e)
		case kind == 1:
			pick(untrusted)
			p.Class = engine.ClassUntrustedPushed
			e = srv.SimulatePush(e)
		default:
			p.Class = engine.ClassTagOnly
			pick(medium)
			if kind == 3 {
				p.Class, p.Publish = engine.ClassTagPublish, true
				pick(high)
			}
			switch (i / 4) % 4 {
			case 0, 1: // pulled, published: misp_json tells the tags
				e = srv.SimulatePull(e)
			case 2: // pushed, published
				e = srv.SimulatePush(e)
			case 3: // pulled unpublished (by uuid): no misp_json, a read is needed
				e.Published = false
				e = srv.SimulatePull(e)
			}
		}
		p.UUID = e.UUID
		plan = append(plan, p)
		if i%500 == 499 {
			if err := collect(); err != nil {
				return nil, "", nil, err
			}
		}
	}
	if err := collect(); err != nil {
		return nil, "", nil, err
	}
	srv.ResetStats()
	if c.latency > 0 {
		srv.SetFault("", misptest.Fault{Latency: c.latency})
	}
	return plan, bigUUID, frames, nil
}

// measure reads the double's counters and checks every trusted event's final state:
// its grade, and for high: complete, no incomplete, published.
func measure(srv *misptest.Server, plan []Planned, bigUUID string) Stats {
	var st Stats
	for _, n := range srv.CallsByRoute() {
		st.Calls += n
	}
	st.Bytes = srv.BytesServed()
	if bigUUID != "" {
		for _, r := range srv.Requests() {
			if strings.Contains(r.Body, bigUUID) || strings.Contains(r.Path, bigUUID) {
				st.BigEventBytes += r.Bytes
			}
		}
	}
	for _, p := range plan {
		if p.Class != engine.ClassTagOnly && p.Class != engine.ClassTagPublish {
			continue
		}
		e, _ := srv.Event(p.UUID)
		if !stateOK(e, p.Publish) {
			st.WrongState++
		}
	}
	return st
}

func stateOK(e misptest.Event, publish bool) bool {
	has := map[string]bool{}
	for _, t := range e.Tags {
		has[t.Name+"/"+strconv.FormatBool(t.Local)] = true
	}
	if !publish {
		return has[trust.SourceReliabilityTag("c")+"/true"]
	}
	return has[trust.SourceReliabilityTag("a")+"/true"] && has[trust.TagWorkflowComplete+"/true"] &&
		!has[trust.TagWorkflowIncomplete+"/false"] && !has[trust.TagWorkflowIncomplete+"/true"] && e.Published
}

// ---- in this process ----

type inProcess struct {
	srv     *misptest.Server
	plan    []Planned
	bigUUID string
	frames  [][]byte
	n       int
}

func startInProcess(c config) (*inProcess, error) {
	d := &inProcess{srv: misptest.NewServer(misptest.Options{Seed: c.seed})}
	var err error
	d.plan, d.bigUUID, d.frames, err = generate(d.srv, c)
	if err != nil {
		d.srv.Close()
		return nil, err
	}
	return d, nil
}

func (d *inProcess) URL() string           { return d.srv.URL() }
func (d *inProcess) Key() string           { return d.srv.AdminKey() }
func (d *inProcess) Plan() []Planned       { return d.plan }
func (d *inProcess) Frames() int           { return len(d.frames) }
func (d *inProcess) Close()                { d.srv.Close() }
func (d *inProcess) Stats() (Stats, error) { return measure(d.srv, d.plan, d.bigUUID), nil }

func (d *inProcess) Next() ([]byte, error) {
	if d.n >= len(d.frames) {
		return nil, io.EOF
	}
	f := d.frames[d.n]
	d.frames[d.n] = nil
	d.n++
	return f, nil
}

// ---- in a child process (so that the bench's RSS is the curator's alone) ----

// childHello is the child's first gob message, sent once every event is simulated;
// then come the frames, one childFrame each until End, and on request the Stats.
type childHello struct {
	URL, Key string
	Plan     []Planned
	Frames   int
}

type childFrame struct {
	F   []byte
	End bool
}

type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	dec   *gob.Decoder
	hello childHello
	eof   bool
	done  bool
}

func startChild() (*child, error) {
	args := append([]string{"-child"}, os.Args[1:]...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the double's process: %w", err)
	}
	ch := &child{cmd: cmd, in: in, dec: gob.NewDecoder(bufio.NewReaderSize(out, 1<<20))}
	if err := ch.dec.Decode(&ch.hello); err != nil {
		ch.Close()
		return nil, fmt.Errorf("read the double's address and plan: %w", err)
	}
	return ch, nil
}

func (d *child) URL() string     { return d.hello.URL }
func (d *child) Key() string     { return d.hello.Key }
func (d *child) Plan() []Planned { return d.hello.Plan }
func (d *child) Frames() int     { return d.hello.Frames }

func (d *child) Next() ([]byte, error) {
	if d.eof {
		return nil, io.EOF
	}
	var f childFrame
	if err := d.dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read a frame from the double: %w", err)
	}
	if f.End {
		d.eof = true
		return nil, io.EOF
	}
	return f.F, nil
}

func (d *child) Stats() (Stats, error) {
	var st Stats
	if _, err := io.WriteString(d.in, "stats\n"); err != nil {
		return st, err
	}
	err := d.dec.Decode(&st)
	return st, err
}

func (d *child) Close() {
	if d.done {
		return
	}
	d.done = true
	d.in.Close()
	wait := make(chan error, 1)
	go func() { wait <- d.cmd.Wait() }()
	select {
	case <-wait:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-wait
	}
}

// runChild is the child's main: simulate, serve the double, stream the frames, answer
// "stats".
func runChild(c config) error {
	srv := misptest.NewServer(misptest.Options{Seed: c.seed})
	defer srv.Close()
	plan, big, frames, err := generate(srv, c)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := gob.NewEncoder(w)
	if err := enc.Encode(childHello{URL: srv.URL(), Key: srv.AdminKey(), Plan: plan, Frames: len(frames)}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	cpu0 := cpuSeconds()
	for i, f := range frames {
		if err := enc.Encode(childFrame{F: f}); err != nil {
			return err
		}
		frames[i] = nil
	}
	if err := enc.Encode(childFrame{End: true}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		st := measure(srv, plan, big)
		st.CPUSeconds = cpuSeconds() - cpu0
		if err := enc.Encode(st); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
