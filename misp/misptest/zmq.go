package misptest

import (
	"context"
	"errors"
	"fmt"

	"github.com/misptrust/misp-trust-operator/misp/misptest/zmqpub"
)

// publisher is the ZeroMQ side: package zmqpub's *Publisher satisfies it.
type publisher interface {
	Endpoint() string
	Publish(topic string, payload []byte) error
	Restart() error
	SetSilent(bool)
	SetDropRate(float64)
	Stats() zmqpub.Stats
	WaitSubscribed(ctx context.Context, topic string, n int) error
	Close() error
}

// maxPublishedLog bounds the in-memory message log of a long-running double (hack/mispsim).
const maxPublishedLog = 100000

// unlockAndPublish releases s.mu and publishes msgs in order. Taking pubMu before releasing
// mu keeps the ZeroMQ order equal to the order of the state changes, as MISP's single Redis
// queue does.
func (s *Server) unlockAndPublish(msgs []Message) {
	s.pubMu.Lock()
	s.mu.Unlock()
	defer s.pubMu.Unlock()
	for _, m := range msgs {
		s.sendLocked(m)
	}
}

func (s *Server) sendLocked(m Message) {
	if m.Time.IsZero() {
		m.Time = s.now()
	}
	s.published = append(s.published, m)
	if len(s.published) > maxPublishedLog {
		s.published = append([]Message(nil), s.published[len(s.published)-maxPublishedLog/2:]...)
	}
	if s.pub == nil {
		return
	}
	if err := s.pub.Publish(m.Topic, m.Payload); err != nil {
		s.logf("misptest: publish %s: %v", m.Topic, err)
	}
}

// Publish sends one raw single-frame message topic+" "+payload (for tests of odd frames). It
// is logged in Published like every other message.
func (s *Server) Publish(topic string, payload []byte) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.sendLocked(Message{Topic: topic, Payload: append([]byte(nil), payload...)})
}

// Published is every message the double sent on ZeroMQ (or would have sent when Options.ZMQ
// is false), oldest first: the in-process view of the feed for tests that do not need a socket.
func (s *Server) Published() []Message {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return append([]Message(nil), s.published...)
}

// RestartPublisher closes the PUB socket and binds it again on the same port, like a restart
// of mispzmq.py: subscribers must reconnect and messages sent meanwhile are lost.
func (s *Server) RestartPublisher() {
	if s.pub == nil {
		return
	}
	// Not under pubMu: REST calls keep working while the publisher is down, and what they
	// publish meanwhile is lost, as with a restarting mispzmq.py.
	if err := s.pub.Restart(); err != nil {
		s.logf("misptest: restart publisher: %v", err)
	}
}

// SetPublisherSilent stops (true) or resumes all ZeroMQ output, heartbeats included, like a
// dead mispzmq.py whose Redis queue keeps growing (misp-api.md §1.1). Messages produced while
// silent are lost, as they are for subscribers of a dead publisher.
func (s *Server) SetPublisherSilent(silent bool) {
	if s.pub != nil {
		s.pub.SetSilent(silent)
	}
}

// SetZMQDropRate drops this fraction of outgoing ZeroMQ messages (seeded, deterministic).
func (s *Server) SetZMQDropRate(p float64) {
	if s.pub != nil {
		s.pub.SetDropRate(p)
	}
}

// ZMQStats are the publisher's counters (zero when ZeroMQ is off).
func (s *Server) ZMQStats() zmqpub.Stats {
	if s.pub == nil {
		return zmqpub.Stats{}
	}
	return s.pub.Stats()
}

// WaitZMQSubscribers blocks until n subscribers would receive a message on topic (for example
// "misp_json_event"), or ctx ends. PUB/SUB loses what is published before a subscription reaches the
// publisher ("slow joiner"); tests wait for it before simulating a pull.
func (s *Server) WaitZMQSubscribers(ctx context.Context, topic string, n int) error {
	if s.pub == nil {
		return errors.New("wait for ZeroMQ subscribers: ZeroMQ is off")
	}
	return s.pub.WaitSubscribed(ctx, topic, n)
}

func newPublisher(opts Options, logf func(string, ...any)) (publisher, error) {
	p, err := zmqpub.New(zmqpub.Options{
		Addr:           opts.ZMQAddr,
		User:           opts.ZMQUser,
		Password:       opts.ZMQPassword,
		HeartbeatEvery: opts.HeartbeatEvery, // 0 → 10s, < 0 → never: the same convention
		Seed:           int64(opts.Seed),
		Logf:           logf,
	})
	if err != nil {
		return nil, fmt.Errorf("new ZeroMQ publisher: %w", err)
	}
	return p, nil
}
