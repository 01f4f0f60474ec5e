package status

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// ConditionFeedConnected is the curator's condition type on MISPInstance.
const ConditionFeedConnected = "FeedConnected"

// Reasons of FeedConnected.
const (
	ReasonConnected        = "Connected"        // handshake done, messages (or heartbeats) arrive
	ReasonConnecting       = "Connecting"       // first attempt, or redialling after a lost connection
	ReasonUnreachable      = "Unreachable"      // the TCP connection fails (refused, timeout, DNS)
	ReasonHandshakeFailing = "HandshakeFailing" // the ZMTP handshake fails (wrong PLAIN credentials, mechanism mismatch)
	ReasonSilent           = "Silent"           // connected, but not even a heartbeat for too long
	ReasonNotConfigured    = "NotConfigured"    // the MISPInstance has no spec.zeroMQ
	// ReasonInvalidConfiguration: the curator cannot run for this instance at all (a
	// referenced Secret or key is missing, the URL or endpoint is unusable).
	ReasonInvalidConfiguration = "InvalidConfiguration"
)

// Values of status.feed.state.
const (
	FeedStateConnected     = "Connected"
	FeedStateConnecting    = "Connecting"
	FeedStateDisconnected  = "Disconnected"
	FeedStateNotConfigured = "NotConfigured"
)

// Failure says what Feed.LastError is about.
type Failure string

const (
	FailureNone      Failure = ""
	FailureConnect   Failure = "connect"   // TCP connect
	FailureHandshake Failure = "handshake" // ZMTP greeting or PLAIN handshake
	FailureSilence   Failure = "silence"   // the silence watchdog closed the connection
	FailureLost      Failure = "lost"      // an established connection failed
)

// Feed is the state of one instance's ZeroMQ subscription as the curator's pipeline sees it.
type Feed struct {
	// Configured is false when the MISPInstance has no spec.zeroMQ.
	Configured bool
	Endpoint   string
	// Connected is true while the handshake is done and the subscription is live.
	Connected      bool
	ConnectedSince time.Time
	LastMessage    time.Time // any topic
	LastHeartbeat  time.Time // misp_json_self
	Reconnects     int64
	// LastError is the last connection problem (never credentials), empty after a success;
	// Failure classifies it.
	LastError string
	Failure   Failure
	// ConfigError, when set, says why no pipeline runs for the instance (it wins over
	// everything else).
	ConfigError string
}

// feedCondition decides FeedConnected. Messages never hold a time that moves by itself ("5s
// ago"): a message changes only when the situation does, so the condition does not churn.
func feedCondition(f Feed, now time.Time, silentAfter time.Duration) (metav1.ConditionStatus, string, string) {
	if f.ConfigError != "" {
		return metav1.ConditionFalse, ReasonInvalidConfiguration,
			"the curator cannot run for this instance: " + truncate(f.ConfigError, maxErrorLen)
	}
	if !f.Configured {
		return metav1.ConditionFalse, ReasonNotConfigured,
			"spec.zeroMQ is not set: events are found by the periodic REST catch-up only"
	}
	if f.Connected {
		last := f.LastMessage
		if last.Before(f.ConnectedSince) {
			last = f.ConnectedSince
		}
		if now.Sub(last) >= silentAfter {
			// mispzmq.py publishes misp_json_self after 10 s without work (misp-api.md §1.6):
			// a connected feed that stays silent much longer has a dead or stuck publisher.
			return metav1.ConditionFalse, ReasonSilent, fmt.Sprintf(
				"connected to %s, but nothing received for more than %s although MISP sends a heartbeat "+
					"after 10 s idle: is MISP's ZeroMQ publisher (mispzmq.py) running?", f.Endpoint, silentAfter)
		}
		return metav1.ConditionTrue, ReasonConnected, fmt.Sprintf("subscribed to %s", f.Endpoint)
	}
	switch f.Failure {
	case FailureHandshake:
		return metav1.ConditionFalse, ReasonHandshakeFailing, fmt.Sprintf("%s: %s", f.Endpoint, f.LastError)
	case FailureConnect:
		return metav1.ConditionFalse, ReasonUnreachable, fmt.Sprintf("%s: %s", f.Endpoint, f.LastError)
	case FailureSilence:
		return metav1.ConditionFalse, ReasonSilent, fmt.Sprintf("%s: %s", f.Endpoint, f.LastError)
	case FailureLost:
		return metav1.ConditionFalse, ReasonConnecting, fmt.Sprintf("%s: %s; redialling", f.Endpoint, f.LastError)
	}
	return metav1.ConditionUnknown, ReasonConnecting, fmt.Sprintf("connecting to %s", f.Endpoint)
}

// feedState is status.feed.state.
func feedState(f Feed) string {
	switch {
	case f.ConfigError != "":
		return FeedStateDisconnected
	case !f.Configured:
		return FeedStateNotConfigured
	case f.Connected:
		return FeedStateConnected
	case f.LastError == "":
		return FeedStateConnecting
	}
	return FeedStateDisconnected
}

// feedStatus is status.feed. lastMessageTime and lastHeartbeatTime keep their previously
// written value while the new one is less than resolution later: a heartbeat every 10 s
// must not mean a status write every 10 s.
func feedStatus(f Feed, prev *v1alpha1.FeedStatus, resolution time.Duration) *v1alpha1.FeedStatus {
	if f.ConfigError != "" {
		return &v1alpha1.FeedStatus{State: FeedStateDisconnected, LastError: truncate(f.ConfigError, maxErrorLen)}
	}
	if !f.Configured {
		return &v1alpha1.FeedStatus{State: FeedStateNotConfigured}
	}
	out := &v1alpha1.FeedStatus{
		State:      feedState(f),
		Reconnects: f.Reconnects,
		LastError:  truncate(f.LastError, maxErrorLen),
	}
	var prevMsg, prevHB *metav1.Time
	if prev != nil {
		prevMsg, prevHB = prev.LastMessageTime, prev.LastHeartbeatTime
	}
	out.LastMessageTime = coarse(prevMsg, f.LastMessage, resolution)
	out.LastHeartbeatTime = coarse(prevHB, f.LastHeartbeat, resolution)
	return out
}

// coarse returns prev while t is less than resolution after it, else t (second precision).
func coarse(prev *metav1.Time, t time.Time, resolution time.Duration) *metav1.Time {
	if t.IsZero() {
		return prev
	}
	if prev != nil && t.Sub(prev.Time) < resolution {
		return prev
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

func feedStatusEqual(a, b *v1alpha1.FeedStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.State == b.State && a.Reconnects == b.Reconnects && a.LastError == b.LastError &&
		timeEqual(a.LastMessageTime, b.LastMessageTime) && timeEqual(a.LastHeartbeatTime, b.LastHeartbeatTime)
}

func catchUpEqual(a, b *v1alpha1.CatchUpStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return timeEqual(a.Watermark, b.Watermark) && timeEqual(a.LastRunTime, b.LastRunTime) &&
		a.EventsScanned == b.EventsScanned && a.SkippedRows == b.SkippedRows
}
