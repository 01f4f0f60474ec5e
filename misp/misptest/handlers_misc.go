package misptest

import (
	"fmt"
	"net/http"
	"strconv"
)

const mispVersion = "2.5.1"

// GET /servers/getVersion (api/01): uuid is MISP.uuid only for users with perm_sync.
func (s *Server) handleGetVersion(c *call) {
	u := c.user
	uuid := "-"
	if u.role.sync {
		uuid = s.instanceUUID
	}
	active := u.role.Role != (Role{}) // the Read Only role has none of these
	c.view(http.StatusOK, obj{
		{"version", mispVersion}, {"pymisp_recommended_version", mispVersion}, {"perm_sync", u.role.sync},
		{"perm_sighting", active}, {"perm_galaxy_editor", active}, {"perm_analyst_data", active}, {"uuid", uuid},
		{"request_encoding", []any{"gzip"}}, {"filter_sightings", true},
	})
}

// GET /servers/getPyMISPVersion.json (api/04).
func (s *Server) handleGetPyMISPVersion(c *call) {
	c.view(http.StatusOK, obj{{"version", mispVersion}})
}

// GET /servers/getSetting/<name> (site admin): the setting's definition with its value.
// Only a few settings are modelled; the key set follows Server::getSettingData (not captured).
func (s *Server) handleGetSetting(c *call) {
	name := ""
	if len(c.params) > 0 {
		name = c.params[0]
	}
	var setting obj
	switch name {
	case "MISP.host_org_id":
		setting = obj{{"level", 0}, {"description", "The hosting organisation of this instance. If this is not selected then replication instances cannot be added."},
			{"value", s.hostOrgID}, {"test", "testLocalOrg"}, {"type", "numeric"}, {"name", name}}
	case "MISP.background_jobs":
		setting = obj{{"level", 1}, {"description", "Enables the use of MISP's background processing."},
			{"value", s.opts.BackgroundJobs}, {"test", "testBoolTrue"}, {"type", "boolean"}, {"name", name}}
	case "MISP.baseurl":
		setting = obj{{"level", 0}, {"description", "The base url of the application (in the format https://www.mymispinstance.com or https://myserver.com/misp). Several features depend on this setting being correctly set to function."},
			{"value", s.url}, {"test", "testBaseURL"}, {"type", "string"}, {"name", name}}
	case "MISP.uuid":
		setting = obj{{"level", 0}, {"description", "The MISP instance UUID. This UUID is used to identify this instance."},
			{"value", s.instanceUUID}, {"test", "testUuid"}, {"type", "string"}, {"name", name}}
	case "Plugin.ZeroMQ_enable":
		setting = obj{{"level", 2}, {"description", "Enables or disables the pub/sub feature of MISP."},
			{"value", s.opts.ZMQ}, {"test", "testBool"}, {"type", "boolean"}, {"name", name}}
	default:
		c.errorJSON(http.StatusNotFound, fmt.Sprintf("Setting %s is invalid.", name))
		return
	}
	c.view(http.StatusOK, setting)
}

// GET /users/view/me (api/05, sync/api/68).
func (s *Server) handleUsersView(c *call) {
	ref := "me"
	if len(c.params) > 0 {
		ref = c.params[0]
	}
	s.mu.Lock()
	u := c.user
	if ref != "me" {
		id, err := strconv.Atoi(ref)
		target := s.users[id]
		if err != nil || target == nil || (target.id != c.user.id && !c.user.role.SiteAdmin) {
			s.mu.Unlock()
			c.errorJSON(http.StatusNotFound, "Invalid user")
			return
		}
		u = target
	}
	body := s.userViewLocked(u)
	s.mu.Unlock()
	c.view(http.StatusOK, body)
}

func (s *Server) userViewLocked(u *userRec) obj {
	now := i64toa(s.now().Unix())
	org := s.orgs[u.orgID]
	var user obj
	if u.id == 1 {
		// The admin created by MISP's installer (api/05).
		user = obj{
			{"id", "1"}, {"password", "*****"}, {"org_id", itoa(u.orgID)}, {"email", u.email}, {"autoalert", false},
			{"invited_by", "0"}, {"gpgkey", nil}, {"certif_public", ""}, {"nids_sid", "4000000"}, {"termsaccepted", false},
			{"newsread", "0"}, {"role_id", itoa(u.role.id)}, {"change_pw", true}, {"contactalert", false}, {"disabled", false},
			{"expiration", nil}, {"current_login", "0"}, {"last_login", "0"}, {"force_logout", false}, {"date_created", nil},
			{"date_modified", i64toa(u.created)}, {"sub", nil}, {"external_auth_required", false}, {"external_auth_key", nil},
			{"last_api_access", now}, {"notification_daily", false}, {"notification_weekly", false},
			{"notification_monthly", false}, {"totp", "*****"}, {"hotp_counter", nil}, {"last_pw_change", nil}, {"totp_is_set", "0"},
		}
	} else {
		// A user added through /admin/users/add (sync/api/68).
		user = obj{
			{"id", itoa(u.id)}, {"password", "*****"}, {"org_id", itoa(u.orgID)}, {"email", u.email}, {"autoalert", false},
			{"invited_by", "1"}, {"gpgkey", ""}, {"certif_public", ""}, {"nids_sid", strconv.Itoa(6543990 + u.id)},
			{"termsaccepted", false}, {"newsread", "0"}, {"role_id", itoa(u.role.id)}, {"change_pw", false},
			{"contactalert", false}, {"disabled", false}, {"expiration", nil}, {"current_login", "0"}, {"last_login", "0"},
			{"force_logout", false}, {"date_created", i64toa(u.created)}, {"date_modified", i64toa(u.created)}, {"sub", nil},
			{"external_auth_required", false}, {"external_auth_key", ""}, {"last_api_access", now},
			{"notification_daily", false}, {"notification_weekly", false}, {"notification_monthly", false},
			{"totp", "*****"}, {"hotp_counter", nil}, {"last_pw_change", i64toa(u.created)}, {"totp_is_set", "0"},
		}
	}
	return obj{{"User", user}, {"Role", roleView(u.role)}, {"UserSetting", []any{}}, {"Organisation", orgFull(org)}}
}

func roleView(r *roleRec) obj {
	sa := r.SiteAdmin
	readOnly := r.Role == (Role{})
	permission, desc := "2", "manage_org"
	switch {
	case r.Publish || sa:
		permission, desc = "3", "publish"
	case readOnly:
		permission, desc = "0", "read_only"
	}
	return obj{
		{"id", itoa(r.id)}, {"name", r.name}, {"created", "2026-11-26 20:55:57"}, {"modified", "2026-11-26 20:55:57"},
		{"perm_add", !readOnly}, {"perm_modify", !readOnly}, {"perm_modify_org", !readOnly}, {"perm_publish", r.Publish},
		{"perm_delegate", r.Publish}, {"perm_sync", r.sync}, {"perm_admin", sa || r.name == "Org Admin"}, {"perm_audit", !readOnly},
		{"perm_auth", true}, {"perm_site_admin", sa}, {"perm_regexp_access", sa}, {"perm_tagger", r.Tagger},
		{"perm_template", sa}, {"perm_sharing_group", sa}, {"perm_tag_editor", r.TagEditor}, {"perm_sighting", !readOnly},
		{"perm_object_template", sa}, {"default_role", false}, {"memory_limit", nil}, {"max_execution_time", nil},
		{"restricted_to_site_admin", false}, {"perm_publish_zmq", r.Publish}, {"perm_publish_kafka", r.Publish},
		{"perm_decaying", !readOnly}, {"enforce_rate_limit", false}, {"rate_limit_count", "0"},
		{"perm_galaxy_editor", !readOnly}, {"perm_warninglist", r.Warninglist}, {"perm_view_feed_correlations", sa},
		{"perm_analyst_data", !readOnly}, {"perm_skip_otp", false}, {"permission", permission}, {"permission_description", desc},
	}
}

func orgFull(o *orgRec) obj {
	desc, typ := "", ""
	createdBy := itoa(o.createdBy)
	if o.local && o.createdBy == 0 {
		desc, typ = "Automatically generated admin organisation", "ADMIN"
	}
	return obj{
		{"id", itoa(o.id)}, {"name", o.name}, {"date_created", o.dateCreated}, {"date_modified", o.dateCreated},
		{"description", desc}, {"type", typ}, {"nationality", ""}, {"sector", ""}, {"created_by", createdBy},
		{"uuid", o.uuid}, {"contacts", nil}, {"local", o.local}, {"restricted_to_domain", nil}, {"landingpage", nil},
	}
}

// GET /attributes/describeTypes.json, asked by PyMISP at start-up. A reduced table covering
// the common types (the real one lists ~190); the shape is MISP's.
func (s *Server) handleDescribeTypes(c *call) {
	type def struct {
		typ, cat string
		ids      int
	}
	defs := []def{
		{"md5", "Payload delivery", 1}, {"sha1", "Payload delivery", 1}, {"sha256", "Payload delivery", 1},
		{"filename", "Payload delivery", 1}, {"ip-src", "Network activity", 1}, {"ip-dst", "Network activity", 1},
		{"hostname", "Network activity", 1}, {"domain", "Network activity", 1}, {"domain|ip", "Network activity", 1},
		{"email-src", "Payload delivery", 1}, {"email-dst", "Network activity", 1}, {"url", "Network activity", 1},
		{"uri", "Network activity", 1}, {"ip-src|port", "Network activity", 1}, {"ip-dst|port", "Network activity", 1},
		{"malware-sample", "Payload delivery", 1}, {"link", "External analysis", 0}, {"comment", "Other", 0},
		{"text", "Other", 0}, {"other", "Other", 0},
	}
	sane := obj{}
	types := []any{}
	mapping := map[string][]any{}
	for _, d := range defs {
		sane = append(sane, field{d.typ, obj{{"default_category", d.cat}, {"to_ids", d.ids}}})
		types = append(types, d.typ)
		mapping[d.cat] = append(mapping[d.cat], d.typ)
	}
	categories := []string{"Payload delivery", "Network activity", "External analysis", "Other"}
	cats := []any{}
	ctm := obj{}
	for _, cat := range categories {
		cats = append(cats, cat)
		ctm = append(ctm, field{cat, mapping[cat]})
	}
	c.view(http.StatusOK, obj{{"result", obj{{"sane_defaults", sane}, {"types", types}, {"categories", cats}, {"category_type_mappings", ctm}}}})
}
