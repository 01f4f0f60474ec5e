package misptest

// handler is one modelled MISP action.
type handler struct {
	route string                // canonical route, the key of Calls()
	fn    func(*Server, *call)  // the action
	write bool                  // counted by WriteCalls (when not GET/HEAD)
	acl   func(u *userRec) bool // ACLComponent check; nil = any authenticated user
}

func aclSiteAdmin(u *userRec) bool   { return u.role.SiteAdmin }
func aclTagger(u *userRec) bool      { return u.role.SiteAdmin || u.role.Tagger }
func aclPublish(u *userRec) bool     { return u.role.SiteAdmin || u.role.Publish }
func aclWarninglist(u *userRec) bool { return u.role.SiteAdmin || u.role.Warninglist }

// routes is the read-only dispatch table, keyed by lower-case "controller/action" (CakePHP
// resolves actions case-insensitively, as PHP method names are).
var routes = map[string]handler{
	"servers/getversion":        {route: "/servers/getVersion", fn: (*Server).handleGetVersion},
	"servers/getpymispversion":  {route: "/servers/getPyMISPVersion", fn: (*Server).handleGetPyMISPVersion},
	"servers/getsetting":        {route: "/servers/getSetting", fn: (*Server).handleGetSetting, acl: aclSiteAdmin},
	"servers/index":             {route: "/servers/index", fn: (*Server).handleServersIndex, acl: aclSiteAdmin},
	"organisations/index":       {route: "/organisations/index", fn: (*Server).handleOrganisationsIndex},
	"users/view":                {route: "/users/view", fn: (*Server).handleUsersView},
	"attributes/describetypes":  {route: "/attributes/describeTypes", fn: (*Server).handleDescribeTypes},
	"events/index":              {route: "/events/index", fn: (*Server).handleEventsIndex},
	"events/view":               {route: "/events/view", fn: (*Server).handleEventsView},
	"events/restsearch":         {route: "/events/restSearch", fn: (*Server).handleEventsRestSearch},
	"events/publish":            {route: "/events/publish", fn: (*Server).handlePublish, write: true, acl: aclPublish},
	"events/alert":              {route: "/events/alert", fn: (*Server).handleAlert, write: true, acl: aclPublish},
	"events/unpublish":          {route: "/events/unpublish", fn: (*Server).handleUnpublish, write: true},
	"tags/attachtagtoobject":    {route: "/tags/attachTagToObject", fn: (*Server).handleAttachTag, write: true, acl: aclTagger},
	"tags/removetagfromobject":  {route: "/tags/removeTagFromObject", fn: (*Server).handleRemoveTag, write: true, acl: aclTagger},
	"warninglists/index":        {route: "/warninglists/index", fn: (*Server).handleWarninglistsIndex},
	"warninglists/view":         {route: "/warninglists/view", fn: (*Server).handleWarninglistsView},
	"warninglists/add":          {route: "/warninglists/add", fn: (*Server).handleWarninglistsAdd, write: true, acl: aclWarninglist},
	"warninglists/edit":         {route: "/warninglists/edit", fn: (*Server).handleWarninglistsEdit, write: true, acl: aclWarninglist},
	"warninglists/toggleenable": {route: "/warninglists/toggleEnable", fn: (*Server).handleWarninglistsToggle, write: true, acl: aclWarninglist},
	"warninglists/delete":       {route: "/warninglists/delete", fn: (*Server).handleWarninglistsDelete, write: true, acl: aclWarninglist},
	"warninglists/checkvalue":   {route: "/warninglists/checkValue", fn: (*Server).handleWarninglistsCheckValue},
}
