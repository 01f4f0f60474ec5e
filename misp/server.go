package misp

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ServerVersion is the answer of GET /servers/getVersion (misp-api.md §2.1).
type ServerVersion struct {
	Version      string
	PermSync     bool
	PermSighting bool
}

type versionBody struct {
	Version      flexString `json:"version"`
	PermSync     flexBool   `json:"perm_sync"`
	PermSighting flexBool   `json:"perm_sighting"`
}

// Version returns MISP's version. It is the cheapest authenticated call: a bad key gives
// ErrUnauthorized (testdata/real/api/02_servers_getVersion_badkey.json).
func (c *Client) Version(ctx context.Context) (ServerVersion, error) {
	req := request{op: "read server version", method: http.MethodGet, route: "/servers/getVersion", path: "/servers/getVersion"}
	var b versionBody
	resp, err := c.call(ctx, req, &b)
	if err != nil {
		return ServerVersion{}, err
	}
	if b.Version == "" {
		return ServerVersion{}, c.decodeFailure(req, resp, errMissing("version"))
	}
	return ServerVersion{Version: string(b.Version), PermSync: bool(b.PermSync), PermSighting: bool(b.PermSighting)}, nil
}

// Me describes the owner of the API key (GET /users/view/me, misp-api.md §2.1).
type Me struct {
	UserID, Email, OrgID, OrgUUID, OrgName, RoleName string

	SiteAdmin, PermAdmin, PermPublish, PermTagger, PermTagEditor, PermWarninglist, PermSync bool
}

type meBody struct {
	User *struct {
		ID    flexString `json:"id"`
		Email flexString `json:"email"`
		OrgID flexString `json:"org_id"`
	} `json:"User"`
	Role *struct {
		Name            flexString `json:"name"`
		PermSiteAdmin   flexBool   `json:"perm_site_admin"`
		PermAdmin       flexBool   `json:"perm_admin"`
		PermPublish     flexBool   `json:"perm_publish"`
		PermTagger      flexBool   `json:"perm_tagger"`
		PermTagEditor   flexBool   `json:"perm_tag_editor"`
		PermWarninglist flexBool   `json:"perm_warninglist"`
		PermSync        flexBool   `json:"perm_sync"`
	} `json:"Role"`
	Organisation *struct {
		ID   flexString `json:"id"`
		UUID flexString `json:"uuid"`
		Name flexString `json:"name"`
	} `json:"Organisation"`
}

// WhoAmI returns the key owner's identity, organisation and role permissions, which decide
// what the operator may do (misp-api.md §2.7): local tags need the host org and
// perm_tagger, publishing or touching global tags of pulled events needs site admin,
// warninglist CRUD needs perm_warninglist.
func (c *Client) WhoAmI(ctx context.Context) (Me, error) {
	req := request{op: "read own user", method: http.MethodGet, route: "/users/view/me", path: "/users/view/me"}
	var b meBody
	resp, err := c.call(ctx, req, &b)
	if err != nil {
		return Me{}, err
	}
	me, err := decodeMe(b)
	if err != nil {
		return Me{}, c.decodeFailure(req, resp, err)
	}
	return me, nil
}

func decodeMe(b meBody) (Me, error) {
	if b.User == nil || b.Role == nil {
		return Me{}, errMissing("User and Role")
	}
	me := Me{
		UserID:          string(b.User.ID),
		Email:           string(b.User.Email),
		OrgID:           string(b.User.OrgID),
		RoleName:        string(b.Role.Name),
		SiteAdmin:       bool(b.Role.PermSiteAdmin),
		PermAdmin:       bool(b.Role.PermAdmin),
		PermPublish:     bool(b.Role.PermPublish),
		PermTagger:      bool(b.Role.PermTagger),
		PermTagEditor:   bool(b.Role.PermTagEditor),
		PermWarninglist: bool(b.Role.PermWarninglist),
		PermSync:        bool(b.Role.PermSync),
	}
	if b.Organisation != nil {
		me.OrgUUID = strings.ToLower(string(b.Organisation.UUID))
		me.OrgName = string(b.Organisation.Name)
		if me.OrgID == "" {
			me.OrgID = string(b.Organisation.ID)
		}
	}
	return me, nil
}

type settingBody struct {
	Value json.RawMessage `json:"value"`
}

// HostOrgID returns the local id of MISP.host_org_id, or "" when the setting is not set
// (its default is 0). Only site admins may read settings: other keys get ErrForbidden.
//
// Source: ServersController::getSetting (MISP 2.5.1) answers the setting description
// {"level", "description", "value", "type": "numeric", …} with viewData; the ACL entry
// 'getSetting' => array() is site-admin only. misp-api.md has no better way to learn the
// host org: /users/view/me does not say whether the user's org is the host org.
func (c *Client) HostOrgID(ctx context.Context) (string, error) {
	req := request{op: "read setting MISP.host_org_id", method: http.MethodGet,
		route: "/servers/getSetting/{setting}", path: "/servers/getSetting/MISP.host_org_id"}
	var b settingBody
	resp, err := c.call(ctx, req, &b)
	if err != nil {
		return "", err
	}
	id, err := decodeHostOrgID(b.Value)
	if err != nil {
		return "", c.decodeFailure(req, resp, err)
	}
	return id, nil
}

func decodeHostOrgID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errMissing("value")
	}
	var v flexInt
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	if v <= 0 {
		return "", nil
	}
	return strconv.FormatInt(int64(v), 10), nil
}
