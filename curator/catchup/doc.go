// Package catchup is the curator's REST catch-up for one MISPInstance: it makes curation
// level-triggered (design.md §4). ZeroMQ is lossy by design — messages published while
// the subscriber is disconnected, dropped by a full queue or lost by a restarting
// publisher are gone (misp-api.md §1.1) — so the Runner asks MISP's event index for the
// events changed since its watermark and hands the trusted ones that still lack their
// policy's state to the engine, with the metadata it already holds (no second read).
//
// When a pass runs: at start, after every ZeroMQ (re)connect (Trigger), and every
// Interval (jittered). A failed pass is retried with backoff and does not move the
// watermark.
//
// # The watermark, and which MISP filter
//
// The watermark is the curator's clock at the start of the last complete pass; it is
// persisted in MISPInstance status.catchUp.watermark so a restarted curator resumes
// there. A pass asks for events changed since watermark − SafetyMargin (2 min by
// default: MISP's clock may differ from ours, and an event committed while the previous
// pass ran must not fall between two passes). The first pass without a watermark looks
// back Lookback (24h by default).
//
// "Changed since" cannot simply be the event `timestamp`: a synchronised event keeps the
// PARTNER's timestamp (misp/real/sync/README.md, "State on A after the pull":
// timestamp = B's event timestamp), so an event pulled an hour after the partner edited
// it has a timestamp an hour older than the pull. A `timestamp` search from the
// watermark misses it if its ZeroMQ message was lost. MISP's index has a second clock
// that is ours: `publish_timestamp`. A pull publishes a published partner event on
// arrival (the pull-new sequence ends with misp_json, and afterwards publish_timestamp is
// this instance's time of that publish: sync/api/51 has timestamp 1795727898 from B and
// publish_timestamp 1795727899 from A), and so does a push (sync/api/93: timestamp
// 1795728088, publish_timestamp 1795728101). A pass therefore runs one scan per clock
// the MISP client can filter on (Options.Fields, MISPSearcher.Fields): `timestamp` catches
// every local change, pushes and pulls of recently edited events; `publish_timestamp`
// catches published events pulled or pushed late. Each scan pages through
// POST /events/index without the org filter (misp.Client.SearchEventsPage): with a
// creator-org filter MISP 2.5.1 answers [] for the whole query as soon as one listed org
// is unknown to it (misp package docs), which a trust list naming orgs that never sent
// an event would trigger; the trust index filters on our side instead.
//
// Limits (documented, not hidden):
//   - an event pulled late that stays UNPUBLISHED (only a pull by uuid or id fetches
//     unpublished events; scheduled "full" pulls only fetch published ones, misp-api.md
//     §1.8) has neither clock in the window; a re-curation (trust change) or a new
//     message for it curates it.
//   - clock skew between the curator and MISP larger than SafetyMargin.
//
// Failures: the engine reports every finished curation (Settled), and every hand-over it
// refused (queue full) as a failure. An event the engine gave up on (MaxAttempts, refused)
// is re-enqueued at the next pass without a hint, and the persisted watermark never moves
// past the pass that first saw an event still unsettled, so a restart finds it again. An
// event whose publish MISP queued but has not confirmed is Pending: it holds the watermark
// like an unsettled event, and the engine, not catch-up, checks it and publishes again if
// the job failed.
//
// # Damaged index rows
//
// One event MISP cannot serve must not stop catch-up: a row that does not decode is
// skipped by the client (misp.EventPage.Skipped), and a page MISP answers with its own
// internal error (500) or with a body the client cannot read is read again in smaller
// pages, down to single rows. A single row that still fails at the end of the search is
// skipped, logged with its position (and event id when known) and counted
// (misptrust_catchup_skipped_rows_total, status.catchUp.skippedRows) — unless no read of
// the search succeeded at all, or more than MaxBadRows rows fail: that is MISP failing,
// not a damaged row, and the pass fails as a whole (502/503/504, 429 and network errors
// always do).
//
// # Dry run
//
// In a dry run the engine only logs its plans, yet passes move the watermark. Rescan,
// called once when dry run is switched off, makes the next pass scan the look-back window
// again so that what arrived during the dry run is curated.
//
// # Trust changes
//
// Recurate(orgs) re-curates the events of organisations that gained a policy or whose
// policy changed its tags or publish flag (index.Diff), within Lookback. Organisations
// that lost their trust are not listed by Diff and their events keep the tags the
// curator attached: the tags recorded a judgement that was true when the event arrived,
// removing them would unpublish nothing but would silently rewrite history on events
// other people may already have acted upon, and a removal of many tags after a policy
// typo would be a flood of MISP writes. A person who wants them gone removes them in
// MISP (or a future opt-in cleanup does).
package catchup
