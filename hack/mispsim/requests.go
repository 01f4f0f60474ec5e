package main

import (
	"net/http"
	"strings"
)

// requests serves GET /_sim/requests?event=<uuid>: the REST calls whose path or
// body names that event, so a person (or the demo) can see what curating one
// event cost. Without ?event it lists every call.
func (a *simAPI) requests(w http.ResponseWriter, r *http.Request) {
	event := strings.ToLower(r.URL.Query().Get("event"))
	type call struct {
		Method string `json:"method"`
		Route  string `json:"route"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	}
	out := []call{}
	for _, rec := range a.s.Requests() {
		if event != "" && !strings.Contains(strings.ToLower(rec.Path), event) && !strings.Contains(strings.ToLower(rec.Body), event) {
			continue
		}
		out = append(out, call{Method: rec.Method, Route: rec.Route, Path: rec.Path, Status: rec.Status})
	}
	writeJSON(w, http.StatusOK, out)
}
