package zmqpub

import (
	"encoding/json"
	"strconv"
	"time"
)

// heartbeatTopic is the topic of mispzmq.py's keep-alive (misp-api.md §1.6).
const heartbeatTopic = "misp_json_self"

// heartbeatStatus returns mispzmq.py's status string number i (0..4), in the
// order of its status_array (MISP app/files/scripts/mispzmq/mispzmq.py).
func heartbeatStatus(i int64) string {
	switch i {
	case 0:
		return "And when you're dead I will be still alive."
	case 1:
		return "And believe me I am still alive."
	case 2:
		return "I'm doing science and I'm still alive."
	case 3:
		return "I feel FANTASTIC and I'm still alive."
	default:
		return "While you're dying I'll be still alive."
	}
}

// heartbeatFrame builds the whole heartbeat frame for an uptime in seconds,
// byte for byte what MISP 2.5.1 sends without orjson: Python's json.dumps
// with its default ", " and ": " separators, e.g.
//
//	misp_json_self {"status": "I feel FANTASTIC and I'm still alive.", "uptime": 234}
//
// (captured in /work/shared/misp/real/zmq/all_messages.jsonl). The status
// index is int(uptime/10 % 5); for the non-negative integer uptimes mispzmq
// computes this equals (uptime/10)%5 in integer arithmetic.
func heartbeatFrame(uptime int64) []byte {
	if uptime < 0 { // wall clock stepped back; mispzmq would print a negative uptime, keep the index valid
		uptime = 0
	}
	status := heartbeatStatus((uptime / 10) % 5)
	quoted, _ := json.Marshal(status) // a constant ASCII string: cannot fail
	b := make([]byte, 0, 96)
	b = append(b, heartbeatTopic+` {"status": `...)
	b = append(b, quoted...)
	b = append(b, `, "uptime": `...)
	b = strconv.AppendInt(b, uptime, 10)
	b = append(b, '}')
	return b
}

// heartbeatLoop sends misp_json_self whenever nothing was published for
// p.every, and again every p.every while it stays idle: mispzmq.py BLPOPs its
// Redis lists with a 10 s timeout and heartbeats on each timeout, so any
// message postpones the next heartbeat (misp-api.md §1.6).
func (p *Publisher) heartbeatLoop() {
	defer close(p.hbDone)
	t := time.NewTimer(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			t.Reset(p.heartbeatIfIdle(time.Now()))
		}
	}
}

// heartbeatIfIdle sends a heartbeat if the publisher has been idle for
// p.every at now, and returns how long to wait before checking again.
func (p *Publisher) heartbeatIfIdle(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if idle := now.Sub(p.lastSend); idle < p.every {
		return p.every - idle
	}
	p.lastSend = now
	if p.silent || p.closed {
		return p.every
	}
	n := p.nHeartbeat
	p.nHeartbeat++
	if dropped(p.opts.Seed, streamHeartbeat, n, p.dropRate) {
		p.stats.Dropped++
		return p.every
	}
	// mispzmq.py: uptime = int(time.time()) - int(timestamp_settings).
	p.fanoutLocked(heartbeatFrame(now.Unix() - p.started.Unix()))
	p.stats.Heartbeats++
	return p.every
}
