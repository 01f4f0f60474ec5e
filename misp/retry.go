package misp

import (
	"errors"
	"net"
	"net/http"
)

// Which failed attempts the client sends again (design.md "Failure model": only provably
// unsent writes are retried).
//
// A read, or a write that says it is idempotent (request.idempotent), is retried after any
// network error, 5xx or 429: sending it twice changes nothing. Any other write — a publish
// (every one pushes the event to the partners again), a tag removal (a removal that
// committed and then answered 504 comes back 404 on a retry, so the caller would think
// nothing was removed and nothing unpublished) — is retried only when the attempt provably
// never reached MISP:
//
//   - the connection could not be made (refused, DNS, dial timeout, the proxy unreachable);
//   - HTTP 429 with Retry-After: a rate limiter turned it away and said when to come back.
//
// Any other failure of such a write is returned at once, and OutcomeUnknown tells the
// caller that it may have been applied: read the state again and decide.

// repeatable reports whether sending req twice has the effect of sending it once.
func (r request) repeatable() bool {
	return r.method == http.MethodGet || r.method == http.MethodHead || r.idempotent
}

// mayRetry reports whether a failed attempt (a transport error, 5xx or 429) may be sent
// again.
func mayRetry(req request, res attemptResult) bool {
	if req.repeatable() {
		return true
	}
	if res.err != nil {
		return notSent(res.err)
	}
	return res.resp.status == http.StatusTooManyRequests && res.retryAfter > 0
}

// notSent reports transport errors that prove nothing reached MISP: no connection was made.
// Anything later (a reset, EOF, a timeout while waiting for the answer) may come after
// MISP read the request and acted on it.
func notSent(err error) bool {
	var ns notSentError
	if errors.As(err, &ns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// notSentError marks a failure that happened before the request was sent (waiting for the
// client-side rate limit).
type notSentError struct{ error }

func (e notSentError) Unwrap() error { return e.error }

// OutcomeUnknown reports whether a failed call may nevertheless have been applied by MISP:
// the request was sent and no answer said what happened — a network error or timeout after
// sending, a 5xx answer (often the proxy in front of MISP giving up while PHP finishes), a
// success answer the client could not read. A caller must not repeat such a write blindly:
// read the state again and plan from it. False for nil, for answers that say MISP refused
// (4xx, 429) and for calls that never left the client.
func OutcomeUnknown(err error) bool {
	if err == nil || errors.Is(err, ErrInvalidArgument) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || (errors.Is(ae.Kind, ErrUnexpectedResponse) && ae.Status >= 200 && ae.Status < 300)
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return false
	}
	return !notSent(err)
}
