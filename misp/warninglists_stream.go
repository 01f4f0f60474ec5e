package misp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The view of a warninglist and the answer to its edit both carry every entry: 67 MB for
// 500,000 organisations. They are decoded as they arrive (bodycaps.go), entry by entry, so
// that reading a list costs the caller only what it keeps.

// ScanWarninglist reads one list (GET /warninglists/view/{id}) like ViewWarninglist, but
// hands its entries to the function start returns, one at a time, as they arrive instead
// of returning them. start is called at every attempt (a retry after a broken answer
// starts over, so what the previous function collected must be dropped). The returned
// Warninglist has no Entries; EntryCount counts them.
func (c *Client) ScanWarninglist(ctx context.Context, id string, start func() func(WarninglistEntry)) (*Warninglist, error) {
	req := request{op: "view warninglist " + id, method: http.MethodGet, route: "/warninglists/view/{id}"}
	if err := c.checkID(req, "warninglist id", id); err != nil {
		return nil, err
	}
	req.path = "/warninglists/view/" + id
	var wl *Warninglist
	req.stream = func(r io.Reader) error {
		var err error
		wl, err = decodeWarninglistStream(r, start())
		return err
	}
	if _, err := c.call(ctx, req, nil); err != nil {
		return nil, err
	}
	return wl, nil
}

// decodeWarninglistStream decodes {"Warninglist": {..., "WarninglistEntry": [...],
// "WarninglistType": [...]}} (testdata/real/api/26_…) from r, calling visit per entry.
func decodeWarninglistStream(r io.Reader, visit func(WarninglistEntry)) (*Warninglist, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var wl *Warninglist
	for dec.More() {
		key, err := keyToken(dec)
		if err != nil {
			return nil, err
		}
		if key != "Warninglist" || wl != nil {
			if err := skipValue(dec, r); err != nil {
				return nil, err
			}
			continue
		}
		if wl, err = decodeListObject(dec, r, visit); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if wl == nil || wl.ID == "" {
		return nil, errMissing("Warninglist.id")
	}
	return wl, nil
}

// decodeListObject decodes the inner list object, streaming WarninglistEntry to visit
// and keeping the other (small) fields.
func decodeListObject(dec *json.Decoder, r io.Reader, visit func(WarninglistEntry)) (*Warninglist, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	fields := map[string]json.RawMessage{}
	count := 0
	for dec.More() {
		key, err := keyToken(dec)
		if err != nil {
			return nil, err
		}
		if key != "WarninglistEntry" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("field %q: %w", key, err)
			}
			markProgress(r)
			fields[key] = raw
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return nil, fmt.Errorf("WarninglistEntry: %w", err)
		}
		for dec.More() {
			var e struct {
				Value   flexString `json:"value"`
				Comment flexString `json:"comment"`
			}
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("WarninglistEntry #%d: %w", count, err)
			}
			markProgress(r)
			count++
			if visit != nil {
				visit(WarninglistEntry{Value: string(e.Value), Comment: string(e.Comment)})
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return nil, fmt.Errorf("WarninglistEntry: %w", err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	var row wlRow
	if err := remarshal(fields, &row); err != nil {
		return nil, err
	}
	wl := row.warninglist(false)
	wl.EntryCount = count
	return &wl, nil
}

// editAnswer is what is read of an edit's answer: the saved row (with its new version) or
// a save-style failure.
type editAnswer struct {
	save    saveBody
	version int
}

// decodeEditStream reads the answer to /warninglists/edit/{id}: {"Warninglist": {row with
// the new version}, "WarninglistEntry": [every entry], "WarninglistType": [...]}
// (testdata/real/api/28_…), or a save-style answer. The entries are skipped one by one,
// never held.
func decodeEditStream(r io.Reader) (editAnswer, error) {
	var out editAnswer
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return out, err
	}
	saveFields := map[string]json.RawMessage{}
	for dec.More() {
		key, err := keyToken(dec)
		if err != nil {
			return out, err
		}
		switch key {
		case "Warninglist":
			var row struct {
				Version flexInt `json:"version"`
			}
			if err := dec.Decode(&row); err != nil {
				return out, fmt.Errorf("Warninglist: %w", err)
			}
			markProgress(r)
			out.version = int(row.Version)
		case "saved", "success", "name", "message", "id", "errors":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return out, fmt.Errorf("field %q: %w", key, err)
			}
			markProgress(r)
			saveFields[key] = raw
		default:
			if err := skipValue(dec, r); err != nil {
				return out, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return out, err
	}
	return out, remarshal(saveFields, &out.save)
}

func remarshal(fields map[string]json.RawMessage, out any) error {
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, got %v", want, t)
	}
	return nil
}

func keyToken(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("expected an object key, got %v", t)
	}
	return k, nil
}

// skipValue skips one value; the elements of an array are skipped one by one, so that a
// long array never sits in memory.
func skipValue(dec *json.Decoder, r io.Reader) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := t.(json.Delim)
	if !ok {
		markProgress(r)
		return nil // a scalar
	}
	if d == '[' {
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			markProgress(r)
		}
		return expectDelim(dec, ']')
	}
	// An object: its values one by one.
	for dec.More() {
		if _, err := keyToken(dec); err != nil {
			return err
		}
		if err := skipValue(dec, r); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}
