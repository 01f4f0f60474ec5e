package misptest

import (
	"net/http"
	"sort"
	"strconv"
)

// Organisations and connected servers: what a curator reads to turn the numeric ids of
// ZeroMQ messages (Event.org_id, "Server" of *_from_connected_server) into UUIDs.

// serverRec is a server link (servers table): pulls through it are owned by orgID and were
// shared by remoteOrgID.
type serverRec struct {
	id          int
	name, url   string
	orgID       int
	remoteOrgID int
}

// ServerLink is a connected server as the double stores it.
type ServerLink struct {
	ID, Name string
	// RemoteOrg is the partner's organisation, the sharer of the events pulled through it.
	RemoteOrg Org
}

// AddServer adds a connected server (a pull link) to the partner's instance whose
// organisation is remote (created when unknown), owned by the host org as MISP's
// /servers/add does, and returns it. Pass its ID as PullOptions.ServerID.
func (s *Server) AddServer(name string, remote Org) ServerLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ensureOrgLocked(remote, 1)
	id := 1
	if n := len(s.servers); n > 0 {
		id = s.servers[n-1].id + 1
	}
	rec := &serverRec{id: id, name: name, url: "http://partner-" + strconv.Itoa(id) + ".invalid", orgID: s.hostOrgID, remoteOrgID: o.id}
	s.servers = append(s.servers, rec)
	return ServerLink{ID: strconv.Itoa(id), Name: name, RemoteOrg: o.public()}
}

// GET /servers/index (sync/api/32, site admin): [{Server, Organisation, RemoteOrg, User}].
func (s *Server) handleServersIndex(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, 0, len(s.servers))
	for _, sv := range s.servers {
		row := obj{{"Server", obj{
			{"id", itoa(sv.id)}, {"name", sv.name}, {"url", sv.url}, {"org_id", itoa(sv.orgID)},
			{"push", false}, {"pull", true}, {"push_sightings", false}, {"push_galaxy_clusters", false},
			{"push_analyst_data", false}, {"pull_analyst_data", false}, {"pull_galaxy_clusters", false},
			{"lastpulledid", nil}, {"lastpushedid", nil}, {"organization", nil}, {"remote_org_id", itoa(sv.remoteOrgID)},
			{"publish_without_email", true}, {"unpublish_event", false}, {"self_signed", false},
			{"pull_rules", `{"tags":{"OR":[],"NOT":[]},"orgs":{"OR":[],"NOT":[]},"type_attributes":{"NOT":[]},"type_objects":{"NOT":[]},"url_params":""}`},
			{"push_rules", `{"tags":{"OR":[],"NOT":[]},"orgs":{"OR":[],"NOT":[]}}`},
			{"cert_file", nil}, {"client_cert_file", nil}, {"internal", false}, {"skip_proxy", false},
			{"remove_missing_tags", false}, {"caching_enabled", false}, {"priority", itoa(sv.id)}, {"cache_timestamp", false},
		}}}
		row = append(row, field{"Organisation", orgServerIndex(s.orgs[sv.orgID])})
		if ro := s.orgs[sv.remoteOrgID]; ro != nil {
			row = append(row, field{"RemoteOrg", orgServerIndex(ro)})
		} else {
			row = append(row, field{"RemoteOrg", obj{{"id", nil}, {"name", nil}, {"uuid", nil}, {"nationality", nil}, {"sector", nil}, {"type", nil}}})
		}
		row = append(row, field{"User", []any{}})
		out = append(out, row)
	}
	c.view(http.StatusOK, out)
}

func orgServerIndex(o *orgRec) obj {
	typ := ""
	if o.local && o.createdBy == 0 {
		typ = "ADMIN"
	}
	return obj{{"id", itoa(o.id)}, {"name", o.name}, {"uuid", o.uuid}, {"nationality", ""}, {"sector", ""}, {"type", typ}}
}

// GET /organisations/index[/scope:local|external|all] (sync/api/56): local organisations by
// default (OrganisationsController::index), every one with scope:all.
func (s *Server) handleOrganisationsIndex(c *call) {
	scope := c.named["scope"]
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.orgs))
	for id, o := range s.orgs {
		switch {
		case scope == "all":
		case scope == "external" && !o.local:
		case scope != "external" && o.local:
		default:
			continue
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		o := s.orgs[id]
		typ, desc := "", any(nil)
		if o.local && o.createdBy == 0 {
			typ, desc = "ADMIN", "Automatically generated admin organisation"
		}
		users := 0
		for _, u := range s.users {
			if u.orgID == id {
				users++
			}
		}
		out = append(out, obj{{"Organisation", obj{
			{"id", itoa(o.id)}, {"name", o.name}, {"date_created", o.dateCreated}, {"date_modified", o.dateCreated},
			{"description", desc}, {"type", typ}, {"nationality", ""}, {"sector", ""}, {"created_by", itoa(o.createdBy)},
			{"uuid", o.uuid}, {"contacts", nil}, {"local", o.local}, {"restricted_to_domain", nil}, {"landingpage", nil},
			{"user_count", itoa(users)}, {"created_by_email", "Unknown"},
		}}})
	}
	c.view(http.StatusOK, out)
}
