package misp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestAnswersAreCappedPerEndpoint(t *testing.T) {
	// A getVersion answer of 1 MiB: was read (the cap was 64 MiB for every answer), is
	// now refused at 64 KiB without being read whole.
	big := `{"version":"2.5.1","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	f := newFake(t).on("GET", "/servers/getVersion", answer(200, big))
	c, _ := f.client()
	_, err := c.Version(context.Background())
	if !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", 64<<10)) {
		t.Fatalf("err = %v", err)
	}
	if f.count("GET", "/servers/getVersion") != 1 {
		t.Error("an oversized answer was retried")
	}
}

// viewOf is a view answer with n entries.
func viewOf(n int, description string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"Warninglist":{"id":"7","name":"big","type":"string","description":%q,"version":"3","enabled":true,"default":false,"category":"known","WarninglistEntry":[`, description)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","value":"org_uuid:%08x-0000-4000-8000-000000000000","warninglist_id":"7","comment":"Org %d"}`, i, i, i)
	}
	b.WriteString(`],"WarninglistType":[{"id":"1","type":"ALL","warninglist_id":"7"}]}}`)
	return b.String()
}

func TestScanWarninglistStreamsTheEntries(t *testing.T) {
	const n = 200_000 // a 23 MB answer, over the 64 KiB cap of small answers and never held whole
	body := viewOf(n, "d")
	f := newFake(t).on("GET", "/warninglists/view/7", answer(200, body))
	c, _ := f.client()
	seen := 0
	wl, err := c.ScanWarninglist(context.Background(), "7", func() func(WarninglistEntry) {
		seen = 0
		return func(e WarninglistEntry) {
			if seen == 12345 && (e.Value != "org_uuid:00003039-0000-4000-8000-000000000000" || e.Comment != "Org 12345") {
				t.Errorf("entry %d = %+v", seen, e)
			}
			seen++
		}
	})
	if err != nil || seen != n || wl.EntryCount != n || wl.Version != 3 || wl.Entries != nil || fmt.Sprint(wl.MatchingAttributes) != "[ALL]" {
		t.Fatalf("scan: %v, seen %d, %+v", err, seen, wl)
	}
}

func TestAStreamedValueIsBounded(t *testing.T) {
	// One 8 MiB description: the decoder would buffer it whole.
	f := newFake(t).on("GET", "/warninglists/view/7", answer(200, viewOf(1, strings.Repeat("d", 8<<20))))
	c, _ := f.client()
	_, err := c.ScanWarninglist(context.Background(), "7", func() func(WarninglistEntry) { return func(WarninglistEntry) {} })
	if !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), "one value of the answer is over") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpdateWarninglistReadsOnlyTheHeadOfTheAnswer(t *testing.T) {
	// MISP echoes every entry in the edit's answer (testdata/real/api/28_…).
	echo := strings.Replace(viewOf(100_000, "d"), `"version":"3"`, `"version":4`, 1)
	echo = strings.Replace(echo, `"category":"known","WarninglistEntry"`, `"category":"known"},"WarninglistEntry"`, 1)
	echo = strings.TrimSuffix(echo, "}}") + "}"
	f := newFake(t).on("POST", "/warninglists/edit/7", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(echo))
	})
	c, _ := f.client()
	v, err := c.UpdateWarninglist(context.Background(), "7", Warninglist{Name: "big", Entries: []WarninglistEntry{{Value: "x"}}})
	if err != nil || v != 4 {
		t.Fatalf("UpdateWarninglist = %d, %v; want version 4", v, err)
	}
}
