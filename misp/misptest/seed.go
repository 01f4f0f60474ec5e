package misptest

import (
	"fmt"
	"strings"
)

// The host org of the captured instance A (misp/real/README.md, sync/README.md).
const (
	defaultHostOrgName = "ORGNAME"
	defaultHostOrgUUID = "997004a6-e769-4ab8-b467-a1ca84cf0666"
)

// seedTags are the tags created on the captured instance by enabling admiralty-scale, workflow
// and tlp (zmq/09, 11, 13): same ids, names, colours and numerical values, so attach messages
// read "...(1) successfully attached..." exactly as in the captures.
var seedTags = []struct {
	name, colour, num string
}{
	{`admiralty-scale:source-reliability="a"`, "#054300", "100"},
	{`admiralty-scale:source-reliability="b"`, "#075200", "75"},
	{`admiralty-scale:source-reliability="c"`, "#086200", "50"},
	{`admiralty-scale:source-reliability="d"`, "#097200", "25"},
	{`admiralty-scale:source-reliability="e"`, "#0a8100", "0"},
	{`admiralty-scale:source-reliability="f"`, "#0c9100", "50"},
	{`admiralty-scale:source-reliability="g"`, "#0da100", "0"},
	{`admiralty-scale:information-credibility="1"`, "#0eb100", "100"},
	{`admiralty-scale:information-credibility="2"`, "#0fc000", "75"},
	{`admiralty-scale:information-credibility="3"`, "#11d000", "50"},
	{`admiralty-scale:information-credibility="4"`, "#12e000", "25"},
	{`admiralty-scale:information-credibility="5"`, "#13ef00", "0"},
	{`admiralty-scale:information-credibility="6"`, "#14ff00", "50"},
	{`workflow:todo="expansion"`, "#39001f", ""},
	{`workflow:todo="review"`, "#3f0022", ""},
	{`workflow:todo="review-for-privacy"`, "#460026", ""},
	{`workflow:todo="review-before-publication"`, "#4c0029", ""},
	{`workflow:todo="release-requested"`, "#52002c", ""},
	{`workflow:todo="review-for-false-positive"`, "#580030", ""},
	{`workflow:todo="review-the-source-credibility"`, "#5e0033", ""},
	{`workflow:todo="add-missing-misp-galaxy-cluster-values"`, "#640036", ""},
	{`workflow:todo="create-missing-misp-galaxy-cluster"`, "#6b003a", ""},
	{`workflow:todo="create-missing-misp-galaxy-cluster-relationship"`, "#71003d", ""},
	{`workflow:todo="create-missing-misp-galaxy"`, "#770040", ""},
	{`workflow:todo="create-missing-relationship"`, "#7d0044", ""},
	{`workflow:todo="add-context"`, "#830047", ""},
	{`workflow:todo="add-tagging"`, "#8a004a", ""},
	{`workflow:todo="check-passive-dns-for-shared-hosting"`, "#90004e", ""},
	{`workflow:todo="review-classification"`, "#960051", ""},
	{`workflow:todo="review-the-grammar"`, "#9c0054", ""},
	{`workflow:todo="do-not-delete"`, "#a20058", ""},
	{`workflow:todo="add-mitre-attack-cluster"`, "#a8005b", ""},
	{`workflow:todo="additional-task"`, "#af005e", ""},
	{`workflow:todo="create-event"`, "#b50062", ""},
	{`workflow:todo="preserve-evidence"`, "#bb0065", ""},
	{`workflow:todo="review-relevance"`, "#c10068", ""},
	{`workflow:todo="review-completeness"`, "#c7006c", ""},
	{`workflow:todo="review-accuracy"`, "#ce006f", ""},
	{`workflow:todo="review-quality"`, "#d40072", ""},
	{`workflow:todo="do-curation"`, "#da0076", ""},
	{`workflow:state="incomplete"`, "#e00079", ""},
	{`workflow:state="complete"`, "#e6007c", ""},
	{`workflow:state="draft"`, "#ec0080", ""},
	{`workflow:state="ongoing"`, "#f30083", ""},
	{`workflow:state="rejected"`, "#f90086", ""},
	{`workflow:state="release"`, "#ff008a", ""},
	{"tlp:red", "#FF2B2B", ""},
	{"tlp:amber", "#FFC000", ""},
	{"tlp:amber+strict", "#FFC000", ""},
	{"tlp:green", "#33FF00", ""},
	{"tlp:white", "#ffffff", ""},
	{"tlp:clear", "#ffffff", ""},
	{"tlp:ex:chr", "#d208f4", ""},
	{"tlp:unclear", "#7e7eae", ""},
}

// seedWarninglists are a few of the default lists of the captured instance, with the ids,
// versions, descriptions and types shown by api/20_warninglists_index.json (disabled, as after
// /warninglists/update) and the entries of misp-warninglists.
var seedWarninglists = []struct {
	id                       int
	name, typ, desc, version string
	types                    []string
	entries                  []string
}{
	{101, "List of RFC 1918 CIDR blocks", "cidr",
		"Event contains one or more entries part of the private network CIDR blocks (RFC 1918)", "5",
		[]string{"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"},
		[]string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}},
	{102, "List of RFC 3849 CIDR blocks", "cidr",
		"Event contains one or more entries part of the IPv6 documentation prefix (RFC 3849)", "4",
		[]string{"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"},
		[]string{"2001:db8::/32"}},
	{103, "List of RFC 5735 CIDR blocks", "cidr",
		"Event contains one or more entries part of the Special Use IPv4 Addresses CIDR blocks (RFC 5735)", "5",
		[]string{"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"},
		[]string{"0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
			"192.0.2.0/24", "192.168.0.0/16", "192.88.99.0/24", "198.18.0.0/15", "198.51.100.0/24",
			"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32"}},
	{104, "List of RFC 6598 CIDR blocks", "cidr",
		"Event contains one or more entries part of the Shared Address Space CIDR blocks (RFC 6598)", "5",
		[]string{"ip-src", "ip-dst", "domain|ip", "ip-dst|port", "ip-src|port"},
		[]string{"100.64.0.0/10"}},
	{105, "List of RFC 6761 Special-Use Domain Names", "string",
		"Event contains one or more entries part of the Special-Use Domain Names (RFC 6761)", "2",
		[]string{"hostname", "domain", "domain|ip"},
		[]string{"10.in-addr.arpa", "16.172.in-addr.arpa", "168.192.in-addr.arpa", "17.172.in-addr.arpa",
			"18.172.in-addr.arpa", "19.172.in-addr.arpa", "20.172.in-addr.arpa", "21.172.in-addr.arpa",
			"22.172.in-addr.arpa", "23.172.in-addr.arpa", "24.172.in-addr.arpa", "25.172.in-addr.arpa",
			"26.172.in-addr.arpa", "27.172.in-addr.arpa", "28.172.in-addr.arpa", "29.172.in-addr.arpa",
			"30.172.in-addr.arpa", "31.172.in-addr.arpa", "example.com", "example.net", "example.org"}},
}

// MISP's default roles (ids as on a fresh 2.5.1 database; "Publisher" matches sync/api/68).
func defaultRoles() []*roleRec {
	return []*roleRec{
		{id: 1, name: "admin", Role: Role{SiteAdmin: true, Publish: true, Tagger: true, TagEditor: true, Warninglist: true}, sync: true},
		{id: 2, name: "Org Admin", Role: Role{Publish: true, Tagger: true, TagEditor: true}},
		{id: 3, name: "User", Role: Role{Tagger: true}},
		{id: 4, name: "Publisher", Role: Role{Publish: true, Tagger: true}},
		{id: 5, name: "Sync user", Role: Role{Publish: true, Tagger: true, TagEditor: true}, sync: true},
		{id: 6, name: "Read Only", Role: Role{}},
	}
}

func (s *Server) seedState() {
	s.orgs = map[int]*orgRec{}
	s.users = map[int]*userRec{}
	s.syncUsers = map[int]*userRec{}
	s.servers = nil
	s.tags = map[int]*tagRec{}
	s.events = map[int]*eventRec{}
	s.eventsByUUID = map[string]*eventRec{}
	s.wls = map[int]*wlRec{}
	s.nextOrgID, s.nextUserID, s.nextTagID, s.nextEventID = 1, 1, 1, 1
	s.nextAttrID, s.nextEventTagID = 1, 1
	s.nextWLEntryID, s.nextWLTypeID = 500000, 600
	s.instanceUUID = s.newUUID()

	host := s.opts.HostOrg
	if host.Name == "" {
		host.Name = defaultHostOrgName
	}
	if host.UUID == "" {
		host.UUID = defaultHostOrgUUID
	}
	hostID := atoiOr(host.ID, 1)
	s.orgs[hostID] = &orgRec{id: hostID, uuid: strings.ToLower(host.UUID), name: host.Name, local: true, dateCreated: s.dateTime()}
	s.hostOrgID = hostID
	s.nextOrgID = hostID + 1

	s.roles = defaultRoles()
	s.users[1] = &userRec{id: 1, email: "admin@admin.test", orgID: hostID, role: s.roles[0], key: s.opts.AdminKey, created: s.now().Unix()}
	s.nextUserID = 2

	for _, t := range seedTags {
		s.addTagLocked(t.name, t.colour, t.num)
	}
	for _, w := range seedWarninglists {
		rec := &wlRec{id: w.id, name: w.name, typ: w.typ, description: w.desc, category: "false_positive",
			version: atoiOr(w.version, 1), isDefault: true}
		for _, v := range w.entries {
			rec.entries = append(rec.entries, wlEntryRec{id: s.nextWLEntryID, value: v})
			s.nextWLEntryID++
		}
		for _, t := range w.types {
			rec.types = append(rec.types, wlTypeRec{id: s.nextWLTypeID, typ: t})
			s.nextWLTypeID++
		}
		s.wls[w.id] = rec
	}
	// The captured instance held 136 default lists; custom lists got ids from 137 on.
	s.nextWLID = 137
	s.regenWarninglistCacheLocked()
}

func (s *Server) addTagLocked(name, colour, num string) *tagRec {
	t := &tagRec{id: s.nextTagID, name: name, colour: colour, exportable: true, numericalValue: num}
	s.tags[t.id] = t
	s.tagOrder = append(s.tagOrder, t.id)
	s.nextTagID++
	return t
}

// newUUID returns a seeded random version-4 UUID (lower case, as MISP writes them).
func (s *Server) newUUID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newKey returns a seeded 40-character API key.
func (s *Server) newKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 40)
	for i := range b {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// randomColour is Tag::quickAdd's random_colour(): "#" and six hex digits.
func (s *Server) randomColour() string {
	return fmt.Sprintf("#%06x", s.rng.UintN(0x1000000))
}

func (s *Server) dateTime() string {
	return s.now().UTC().Format("2006-01-02 15:04:05")
}
