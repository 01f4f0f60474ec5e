package misptest

import "net/http"

// view writes a RestResponse::viewData answer.
func (c *call) view(status int, v any) {
	if c.compact {
		c.write(status, compactJSON(v))
	} else {
		c.write(status, prettyJSON(v))
	}
}

func (c *call) write(status int, body []byte) {
	c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	c.w.WriteHeader(status)
	c.status = status
	if c.r.Method != http.MethodHead {
		c.w.Write(body)
	}
}

// errorJSON writes a CakePHP exception body: {"name","message","url"}, values through h(),
// encoded with plain json_encode (escaped slashes), compact (misp-api.md §0; api/02, api/61).
func (c *call) errorJSON(status int, msg string) {
	body := obj{{"name", h(msg)}, {"message", h(msg)}, {"url", h(c.r.URL.EscapedPath())}}
	c.write(status, phpDefaultJSON(body))
}

// internalError is what MISP with debug=0 answers for any non-HTTP exception.
func (c *call) internalError() {
	c.errorJSON(http.StatusInternalServerError, "An Internal Error Has Occurred.")
}

// saveSuccess is RestResponse::saveSuccessResponse.
func (c *call) saveSuccess(controller, action, id, message string) {
	b := obj{{"saved", true}, {"success", true}, {"name", message}, {"message", message}, {"url", actionURL(controller, action, id)}}
	if id != "" {
		b = append(b, field{"id", id})
	}
	c.view(http.StatusOK, b)
}

// saveFail is RestResponse::saveFailResponse: HTTP 403, even for validation errors.
func (c *call) saveFail(controller, action, id, singular string, errs any) {
	name := "Could not " + action + " " + singular
	b := obj{{"saved", false}, {"name", name}, {"message", name}, {"url", actionURL(controller, action, id)}, {"errors", errs}}
	if id != "" {
		b = append(b, field{"id", id})
	}
	c.view(http.StatusForbidden, b)
}

func actionURL(controller, action, id string) string {
	u := "/" + controller + "/" + action
	if id != "" {
		u += "/" + id
	}
	return u
}

type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}
