package misp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Organisation is one row of /organisations/index: the local numeric id that event
// rows and ZeroMQ messages carry (Event.org_id, orgc_id) and the UUID policies name.
type Organisation struct {
	ID   string // local numeric id
	UUID string // lower case
	Name string
	// Local is true for organisations with users on this instance (the host org among
	// them); partners' organisations are not local.
	Local bool
}

// ServerLink is one connected server of /servers/index: the link a pull goes through
// ("Server" of *_from_connected_server, misp-api.md §1.7c).
type ServerLink struct {
	ID   string // local servers.id
	Name string
	// OrgID is the link's local organisation: the owner (Event.org_id) of every event
	// pulled through it (misp-api.md §2.2 "Access").
	OrgID string
	// RemoteOrgUUID is the partner's organisation (RemoteOrg), lower case: the sharer of
	// the events pulled through the link.
	RemoteOrgUUID string
	RemoteOrgName string
}

type orgRow struct {
	Organisation *struct {
		ID    flexString `json:"id"`
		UUID  flexString `json:"uuid"`
		Name  flexString `json:"name"`
		Local flexBool   `json:"local"`
	} `json:"Organisation"`
}

type serverRow struct {
	Server *struct {
		ID          flexString `json:"id"`
		Name        flexString `json:"name"`
		OrgID       flexString `json:"org_id"`
		RemoteOrgID flexString `json:"remote_org_id"`
	} `json:"Server"`
	RemoteOrg *struct {
		ID   flexString `json:"id"`
		UUID flexString `json:"uuid"`
		Name flexString `json:"name"`
	} `json:"RemoteOrg"`
}

// decodeOrganisations decodes /organisations/index (sync/api/56): [{"Organisation": {...}}].
func decodeOrganisations(body []byte) ([]Organisation, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf("expected a JSON array of organisations, got %s", jsonKind(trimmed))
	}
	var rows []orgRow
	if err := json.Unmarshal(trimmed, &rows); err != nil {
		return nil, err
	}
	out := make([]Organisation, 0, len(rows))
	for i, r := range rows {
		o := r.Organisation
		if o == nil || !isID(string(o.ID)) || !isUUID(string(o.UUID)) {
			return nil, fmt.Errorf("organisation #%d has no numeric id or no uuid", i)
		}
		out = append(out, Organisation{ID: string(o.ID), UUID: strings.ToLower(string(o.UUID)), Name: string(o.Name), Local: bool(o.Local)})
	}
	return out, nil
}

// decodeServerLinks decodes /servers/index (sync/api/32): [{"Server", "Organisation",
// "RemoteOrg", "User"}].
func decodeServerLinks(body []byte) ([]ServerLink, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf("expected a JSON array of servers, got %s", jsonKind(trimmed))
	}
	var rows []serverRow
	if err := json.Unmarshal(trimmed, &rows); err != nil {
		return nil, err
	}
	out := make([]ServerLink, 0, len(rows))
	for i, r := range rows {
		s := r.Server
		if s == nil || !isID(string(s.ID)) {
			return nil, fmt.Errorf("server #%d has no numeric id", i)
		}
		l := ServerLink{ID: string(s.ID), Name: string(s.Name), OrgID: string(s.OrgID)}
		// A link whose remote org was deleted has no RemoteOrg: its pulls have no known sharer.
		if r.RemoteOrg != nil && isUUID(string(r.RemoteOrg.UUID)) {
			l.RemoteOrgUUID = strings.ToLower(string(r.RemoteOrg.UUID))
			l.RemoteOrgName = string(r.RemoteOrg.Name)
		}
		out = append(out, l)
	}
	return out, nil
}

// Organisations lists every organisation this MISP knows, local and remote: GET
// /organisations/index/scope:all (without scope:all MISP lists only local ones).
func (c *Client) Organisations(ctx context.Context) ([]Organisation, error) {
	req := request{op: "list organisations", method: http.MethodGet, route: "/organisations/index",
		path: "/organisations/index/scope:all"}
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	orgs, err := decodeOrganisations(resp.body)
	if err != nil {
		return nil, c.decodeFailure(req, resp, err)
	}
	return orgs, nil
}

// ServerLinks lists the connected servers: GET /servers/index. MISP shows them to site
// admins (other keys get ErrForbidden).
func (c *Client) ServerLinks(ctx context.Context) ([]ServerLink, error) {
	req := request{op: "list connected servers", method: http.MethodGet, route: "/servers/index", path: "/servers/index"}
	resp, err := c.call(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	links, err := decodeServerLinks(resp.body)
	if err != nil {
		return nil, c.decodeFailure(req, resp, err)
	}
	return links, nil
}
