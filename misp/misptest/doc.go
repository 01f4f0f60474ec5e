// Package misptest is an in-process, stateful double of a MISP 2.5.1 server, in the spirit of
// net/http/httptest: NewServer starts a REST API on 127.0.0.1:0 (and optionally a ZeroMQ PUB
// socket) that answers like the real MISP captured in /work/shared/misp/real/.
//
// Fidelity is the point: the double is never kinder than MISP. It reproduces the awkward parts
// that trip up clients — IDs as JSON strings, `[]` versus `{}`, the `Tag` key missing when an
// event has no tags, HTML-escaped error bodies, 403 for validation errors, 405 for a forbidden
// publish, 302 from /warninglists/delete whatever happened, a warninglist cache that keeps
// matching a deleted list, global tag changes that unpublish an event and bump its timestamp,
// and the exact ZeroMQ message sequences of a pull or a push (misp/real/sync/README.md).
//
// By default every call is answered at once, however many arrive together. Options.Capacity
// (capacity.go) makes it a MISP with finite resources instead: a request worker pool, service
// times per route, a queue, CPU shared with background publish jobs on their own workers;
// CalibratedCapacity reproduces the measured MISP 2.5.1 (misp/real/capacity.md).
//
// The double is wire-level: it does not import the project's MISP client. Tests talk to it
// over HTTP and ZeroMQ exactly as they would talk to a real MISP. (Its calibration benchmark,
// BenchmarkCalibratedMISP, drives it through the client, as a test file.)
package misptest
