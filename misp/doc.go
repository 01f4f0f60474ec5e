// Package misp is the typed client of the MISP REST API used by the misp-trust-operator:
// event metadata, local tagging, publishing and custom warninglists.
//
// Facts about MISP come from /work/shared/misp-api.md (read from MISP 2.5.1's source) and
// from answers of a real MISP 2.5.1, copied into testdata/real (their README lists the
// behaviours). The quirks the client absorbs:
//
//   - Authentication is the raw key in Authorization (no "Bearer"); Accept must be exactly
//     application/json or MISP answers as to a browser (misp-api.md §2.0).
//   - Ids and integers are JSON strings, sometimes numbers; booleans may be 0/1
//     (misp-api.md §0): every decoder accepts both.
//   - Error messages are HTML-escaped (&quot;, &#039;); they are unescaped for humans.
//   - A 403 is a bad key ("Authentication failed…" → ErrUnauthorized), a refused save
//     ({"saved": false, "errors"} → ErrValidation) or a permission (ErrForbidden).
//   - /warninglists/toggleEnable answers 200 even when it fails; "saved" is checked.
//   - /warninglists/delete answers 302 whatever happened: redirects are never followed and
//     the delete is confirmed by a 404 from /warninglists/view.
//   - /warninglists/checkValue answers [] when nothing matched, an object otherwise.
//   - /events/index with "minimal" drops events without attributes, so it is not used.
//
// Every call is rate limited on the client side, has a per-attempt timeout, and is
// retried with capped exponential backoff and full jitter only after a network error, a
// 5xx or a 429 (honouring Retry-After); 4xx answers are never retried. The API key never
// appears in an error, a log line or a metric label.
package misp
