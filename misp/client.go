package misp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
)

// Defaults applied by New for zero Options fields.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultBurst          = 20
	DefaultMaxRetries     = 4
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
	DefaultUserAgent      = "misp-trust-operator/dev"
)

// Options configure a Client. Only URL and APIKey are required.
type Options struct {
	URL                string            // base URL, e.g. https://misp.misp.svc (a path prefix is kept)
	APIKey             string            // raw key, sent as `Authorization: <key>` (surrounding whitespace is trimmed)
	CABundle           []byte            // optional PEM, added to the system roots
	InsecureSkipVerify bool              // only when asked; logged once at New
	Timeout            time.Duration     // per HTTP attempt; 0 → 30s; <0 → none (the caller's ctx only)
	QPS                float64           // a ceiling on requests per second; 0 → none (the adaptive limit alone); <0 → no client-side limit at all (tests)
	Burst              int               // of the QPS ceiling; 0 → 20
	MaxInFlight        int               // ceiling of the adaptive concurrency limit (limiter.go); 0 → 64; <0 → no limit at all
	InitialInFlight    int               // where the adaptive limit starts; 0 → 1
	MaxRetries         int               // retries for network errors, 5xx, 429; 0 → 4; <0 → none
	RetryBaseDelay     time.Duration     // 0 → 500ms (capped exponential + full jitter)
	RetryMaxDelay      time.Duration     // 0 → 30s; also the longest Retry-After the client waits for
	UserAgent          string            // "" → "misp-trust-operator/dev"
	Metrics            *Metrics          // optional; NewMetrics(reg)
	Instance           string            // the MISPInstance ("namespace/name") in metrics and the concurrency-limit gauge; "" when there is none
	Logger             logr.Logger       // optional
	Transport          http.RoundTripper // optional (tests); when set, CABundle and InsecureSkipVerify are not applied
}

// Client is a typed client for the parts of the MISP REST API the operator uses. It is safe
// for concurrent use.
type Client struct {
	base       string // scheme://host[:port][/prefix], no trailing slash
	key        string
	userAgent  string
	hc         *http.Client
	limiter    *rate.Limiter
	inflight   *inflightLimiter // nil: no concurrency limit
	timeout    time.Duration
	maxRetries int
	baseDelay  time.Duration
	maxDelay   time.Duration
	metrics    *Metrics
	instance   string // metrics label
	log        logr.Logger
	maxBody    int64 // lowers every answer cap of bodycaps.go when > 0 (tests)

	// sleep waits d or until ctx ends; tests replace it to observe backoff without waiting.
	sleep func(ctx context.Context, d time.Duration) error
	// orgFilterIgnored is logged once when MISP ignores the "org" index filter (§ SearchEvents).
	orgFilterIgnored sync.Once
}

// New checks the options and builds a Client. It does not contact MISP.
func New(opts Options) (*Client, error) {
	base, err := parseBaseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	key := strings.TrimSpace(opts.APIKey)
	if key == "" {
		return nil, errors.New("misp: APIKey is empty")
	}
	for _, r := range key {
		// MISP only accepts [a-zA-Z0-9]{40} (misp-api.md §2.0); refuse anything that cannot
		// even travel in a header. The key itself is never quoted in the error.
		if r <= ' ' || r > '~' {
			return nil, errors.New("misp: APIKey contains whitespace, control or non-ASCII characters")
		}
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	c := &Client{
		base:       base.String(),
		key:        key,
		userAgent:  opts.UserAgent,
		timeout:    opts.Timeout,
		maxRetries: opts.MaxRetries,
		baseDelay:  opts.RetryBaseDelay,
		maxDelay:   opts.RetryMaxDelay,
		metrics:    opts.Metrics,
		instance:   opts.Instance,
		log:        log.WithValues("misp", base.Redacted()),
		sleep:      sleepCtx,
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.baseDelay <= 0 {
		c.baseDelay = DefaultRetryBaseDelay
	}
	if c.maxDelay <= 0 {
		c.maxDelay = DefaultRetryMaxDelay
	}
	if c.maxDelay < c.baseDelay {
		c.maxDelay = c.baseDelay
	}
	burst := opts.Burst
	if burst <= 0 {
		burst = DefaultBurst
	}
	if opts.QPS <= 0 {
		c.limiter = rate.NewLimiter(rate.Inf, burst)
	} else {
		c.limiter = rate.NewLimiter(rate.Limit(opts.QPS), burst)
	}
	if opts.MaxInFlight >= 0 && opts.QPS >= 0 {
		maxInFlight, initial := opts.MaxInFlight, opts.InitialInFlight
		if maxInFlight == 0 {
			maxInFlight = DefaultMaxInFlight
		}
		if initial <= 0 {
			initial = DefaultInitialInFlight
		}
		c.inflight = newInflightLimiter(initial, maxInFlight, time.Now, c.metrics.limitGauge(opts.Instance))
	}

	transport := opts.Transport
	if transport == nil {
		tlsConfig, err := buildTLSConfig(opts.CABundle, opts.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsConfig
		transport = t
	}
	if opts.InsecureSkipVerify {
		c.log.Info("TLS certificate verification of MISP is DISABLED (insecureSkipVerify); use a CA bundle instead")
	}
	if base.Scheme == "http" {
		c.log.Info("MISP URL uses plain http: the API key travels unencrypted")
	}
	c.hc = &http.Client{
		Transport: transport,
		// Never follow redirects: /warninglists/delete answers 302 even to JSON clients
		// (misp-api.md §2.6), and any other redirect means MISP took us for a browser.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("misp: URL is empty")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Parse errors quote the input; the URL holds no secret (userinfo is refused below).
		return nil, fmt.Errorf("misp: invalid URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("misp: URL %q must use http or https, not %q", u.Redacted(), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("misp: URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("misp: URL must not contain credentials; the API key goes in APIKey")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("misp: URL %q must not have a query or fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func buildTLSConfig(caBundle []byte, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // only when asked, and logged
	if len(caBundle) == 0 {
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("misp: CABundle contains no PEM certificate")
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// request describes one logical API call.
type request struct {
	op     string // "publish event <uuid>": goes into errors and logs
	method string
	route  string // route template for metrics and errors: "/events/publish/{id}"
	path   string // the real path, ids already escaped
	body   any    // JSON-encoded; nil → "{}" for POST, nothing for GET
	// stream, when set, decodes a 2xx answer as it arrives instead of reading it into
	// memory (bodycaps.go); it is called once per attempt and must start afresh.
	stream func(r io.Reader) error
	// idempotent: a POST that may be sent twice (a read, or a write whose repeat changes
	// nothing). Other POSTs are retried only when provably unsent (retry.go).
	idempotent bool
}

// response is the final answer to a request (after retries).
type response struct {
	status   int
	header   http.Header
	body     []byte
	attempts int
	limit    int64 // the answer cap that applied (bodycaps.go)
	// streamErr is a streamed answer the stream function could not decode.
	streamErr error
}

// attemptResult is the outcome of one HTTP attempt.
type attemptResult struct {
	resp       *response
	err        error // transport error (nil when resp is set)
	retryAfter time.Duration
}

// do sends req with rate limiting, a per-attempt timeout and retries for network errors,
// 5xx and 429 — for writes only those mayRetry allows. It returns the first non-retryable
// answer (any status, for the caller to interpret) or an error once the retries are spent.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	var payload []byte
	switch {
	case req.body != nil:
		b, err := marshalBody(req.body)
		if err != nil {
			return nil, fmt.Errorf("misp: %s: encode request: %w", c.opName(req), err)
		}
		payload = b
	case req.method != http.MethodGet:
		payload = []byte("{}")
	}
	for attempt := 0; ; attempt++ {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, notSentError{fmt.Errorf("misp: %s: %s %s: waiting for the client-side rate limit: %w", c.opName(req), req.method, req.route, err)}
		}
		res, err := c.limitedAttempt(ctx, req, payload)
		if err != nil {
			return nil, fmt.Errorf("misp: %s: %s %s: waiting for the client-side concurrency limit: %w", c.opName(req), req.method, req.route, err)
		}
		if res.resp != nil {
			res.resp.attempts = attempt + 1
		}
		if res.err != nil && permanent(res.err) {
			return nil, c.finalError(req, res, attempt+1)
		}
		retryable := res.err != nil || res.resp.status >= 500 || res.resp.status == http.StatusTooManyRequests
		if !retryable {
			return res.resp, nil
		}
		if !mayRetry(req, res) {
			return nil, c.finalError(req, res, attempt+1)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("misp: %s: %s %s: %w", c.opName(req), req.method, req.route, context.Cause(ctx))
		}
		delay, ok := c.retryDelay(ctx, attempt, res.retryAfter)
		if !ok {
			return nil, c.finalError(req, res, attempt+1)
		}
		c.metrics.retried(c.instance, req.route)
		kv := []any{"op", c.opName(req), "endpoint", req.route, "attempt", attempt + 1, "delay", delay}
		if res.err != nil {
			kv = append(kv, "error", res.err.Error())
		} else {
			kv = append(kv, "status", res.resp.status)
		}
		c.log.V(1).Info("retrying MISP request", kv...)
		if err := c.sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("misp: %s: %s %s: while waiting to retry after %s: %w",
				c.opName(req), req.method, req.route, describe(res), err)
		}
	}
}

// attempt performs one HTTP exchange and reads the whole body under the attempt timeout.
func (c *Client) attempt(ctx context.Context, req request, payload []byte) attemptResult {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, c.base+req.path, body)
	if err != nil {
		return attemptResult{err: permanentError{err}}
	}
	hreq.Header.Set("Authorization", c.key)
	// Accept must be exactly application/json or MISP treats the call as a browser
	// request (misp-api.md §2.0).
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)

	start := time.Now()
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		c.metrics.observe(c.instance, req.route, 0, time.Since(start))
		return attemptResult{err: err}
	}
	defer hresp.Body.Close()
	limit := c.bodyCap(req.route)
	if req.stream != nil && hresp.StatusCode >= 200 && hresp.StatusCode < 300 {
		res := c.streamAnswer(req, hresp, limit)
		c.metrics.observe(c.instance, req.route, hresp.StatusCode, time.Since(start))
		return res
	}
	data, err := io.ReadAll(io.LimitReader(hresp.Body, limit+1))
	c.metrics.observe(c.instance, req.route, hresp.StatusCode, time.Since(start))
	if err != nil {
		return attemptResult{err: fmt.Errorf("read answer (HTTP %d): %w", hresp.StatusCode, err)}
	}
	resp := &response{status: hresp.StatusCode, header: hresp.Header, body: data, limit: limit}
	if int64(len(data)) > limit {
		// Not retryable: the same answer would come back. Reported by the caller's decode.
		resp.body = nil
		resp.status = -hresp.StatusCode
		return attemptResult{resp: resp}
	}
	return attemptResult{resp: resp, retryAfter: parseRetryAfter(hresp.Header.Get("Retry-After"), time.Now())}
}

// retryDelay picks the wait before the next attempt, or says to stop.
func (c *Client) retryDelay(ctx context.Context, attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if attempt >= c.maxRetries {
		return 0, false
	}
	var d time.Duration
	if retryAfter > 0 {
		if retryAfter > c.maxDelay {
			return 0, false // MISP asks for more patience than we have: report it.
		}
		d = retryAfter
	} else {
		d = backoff(c.baseDelay, c.maxDelay, attempt)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return 0, false // the caller's deadline ends first: report the real failure now.
	}
	return d, true
}

// backoff is capped exponential backoff with full jitter: uniform in [0, min(max, base·2^n)].
func backoff(base, max time.Duration, attempt int) time.Duration {
	ceiling := base
	for i := 0; i < attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max || ceiling <= 0 {
		ceiling = max
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// permanentError marks a failure that no retry can fix (a request that cannot be built).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// permanent reports transport errors that another attempt cannot fix: a certificate MISP's
// name or CA does not match, TLS spoken to a plain HTTP port, a request that cannot be built.
func permanent(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var rhe tls.RecordHeaderError
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) ||
		errors.As(err, &cie) || errors.As(err, &rhe)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func describe(r attemptResult) string {
	if r.err != nil {
		return r.err.Error()
	}
	return "HTTP " + strconv.Itoa(r.resp.status)
}

// finalError reports the last retryable failure once no retry is left.
func (c *Client) finalError(req request, res attemptResult, attempts int) error {
	if res.err != nil {
		return fmt.Errorf("misp: %s: %s %s: %d attempt(s): %w", c.opName(req), req.method, req.route, attempts, res.err)
	}
	e := c.apiError(req, res.resp)
	e.RetryAfter = res.retryAfter
	return e
}

// apiError builds the APIError for an unsuccessful answer.
func (c *Client) apiError(req request, resp *response) *APIError {
	if resp.status < 0 {
		return &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Status: -resp.status,
			Kind: ErrUnexpectedResponse, Message: fmt.Sprintf("answer larger than %d bytes", resp.limit)}
	}
	p := decodeError(resp.status, resp.body)
	e := &APIError{
		Op:       c.opName(req),
		Method:   req.method,
		Endpoint: req.route,
		Status:   resp.status,
		Message:  redact(p.Message, c.key),
		Errors:   redactAll(p.Errors, c.key),
		Kind:     classify(resp.status, p),
	}
	if resp.status >= 300 && resp.status < 400 {
		e.Message = "unexpected redirect (MISP treated the call as a browser request?)"
		if loc := resp.header.Get("Location"); loc != "" {
			e.Message += " to " + redact(locationPath(loc), c.key)
		}
	}
	return e
}

// locationPath keeps only the path of a Location header for messages.
func locationPath(loc string) string {
	if u, err := url.Parse(loc); err == nil {
		return u.Path
	}
	return ""
}

// decodeFailure reports a 2xx answer whose body the client cannot use.
func (c *Client) decodeFailure(req request, resp *response, err error) *APIError {
	if resp.status < 0 {
		return c.apiError(req, resp)
	}
	return &APIError{Op: c.opName(req), Method: req.method, Endpoint: req.route, Status: resp.status,
		Kind: ErrUnexpectedResponse, Message: redact("cannot decode answer: "+err.Error(), c.key)}
}

// call runs req and decodes a 2xx JSON answer into out (unless out is nil). Any other
// status becomes an *APIError.
func (c *Client) call(ctx context.Context, req request, out any) (*response, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.status < 200 || resp.status >= 300 {
		return resp, c.apiError(req, resp)
	}
	if resp.streamErr != nil {
		return resp, c.decodeFailure(req, resp, resp.streamErr)
	}
	if out != nil {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return resp, c.decodeFailure(req, resp, err)
		}
	}
	return resp, nil
}
