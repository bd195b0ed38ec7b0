package interchange

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Our own check of the FCPXML 1.10 DTD's rules for every element the
// writer uses. The facts come from Apple's DTD ("FCP XML Interchange
// Format, Version 1.10", published on developer.apple.com as "Document
// Type Definition" and in Final Cut Pro's support downloads): which
// children an element may have and in what order, which attributes it
// declares, which are #REQUIRED, their enumerated values and defaults, ID
// and IDREF types, and the comments that constrain values ('time'
// attributes are a rational number of seconds with a 64-bit numerator and
// a 32-bit denominator; anchored items have a non-zero lane). Apple notes
// that Final Cut Pro rejects a document that does not match the DTD. An
// element the writer starts using that is not in this table fails the
// check until its rules are added here.

// attrType is how an attribute's value is checked.
type attrType int

const (
	cdata  attrType = iota
	timeV           // %time;
	idV             // ID
	idref           // IDREF
	enumV           // one of values
	intV            // a whole number (lane; width, height in practice)
	fixedV          // #FIXED value
	dbV             // a level in dB ("-6dB"): adjust-volume amount
)

type attrRule struct {
	typ      attrType
	required bool
	values   []string // enumV: allowed; fixedV: the one value
}

type elemRule struct {
	// content is the content model as a regexp over the children's names,
	// each followed by a space; "" for EMPTY.
	content string
	attrs   map[string]attrRule
}

// Entity groups of the DTD, as regexp alternatives.
const (
	dtdEventItem  = `((clip|audition|mc-clip|ref-clip|sync-clip|asset-clip|collection-folder|keyword-collection|smart-collection|project) )`
	dtdClipItem   = `((audio|video|clip|title|mc-clip|ref-clip|sync-clip|asset-clip|audition|gap) )`
	dtdAnchorItem = `((audio|video|clip|title|caption|mc-clip|ref-clip|sync-clip|asset-clip|audition|spine) )`
	dtdMarkerItem = `((marker|chapter-marker|rating|keyword|analysis-marker) )`
	// %timing-params; then %intrinsic-params; (video, then audio).
	dtdTimingIntrinsic = `(conform-rate )?(timeMap )?` +
		`(object-tracker )?(adjust-crop )?(adjust-corners )?(adjust-conform )?(adjust-transform )?(adjust-blend )?` +
		`(adjust-stabilization )?(adjust-rollingShutter )?(adjust-360-transform )?(adjust-reorient )?(adjust-orientation )?(adjust-cinematic )?` +
		`(adjust-volume )?(adjust-panner )?`
)

func fcpxmlRules() map[string]elemRule {
	opt := func(t attrType) attrRule { return attrRule{typ: t} }
	req := func(t attrType) attrRule { return attrRule{typ: t, required: true} }
	enum := func(v ...string) attrRule { return attrRule{typ: enumV, values: v} }
	boolean := enum("0", "1")
	// %ao_attrs; and %clip_attrs_with_optional_duration;
	clipAttrs := map[string]attrRule{"lane": opt(intV), "offset": opt(timeV), "name": opt(cdata), "start": opt(timeV),
		"duration": opt(timeV), "enabled": boolean}
	with := func(base map[string]attrRule, more map[string]attrRule) map[string]attrRule {
		out := map[string]attrRule{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	return map[string]elemRule{
		"fcpxml": {content: `(import-options )?(resources )?((library )|(event )*|` + dtdEventItem + `*)`,
			attrs: map[string]attrRule{"version": {typ: fixedV, values: []string{"1.10"}}}},
		"resources": {content: `((asset|effect|format|media|locator) )*`},
		"format": {attrs: map[string]attrRule{"id": req(idV), "name": opt(cdata), "frameDuration": opt(timeV), "fieldOrder": opt(cdata),
			"width": opt(intV), "height": opt(intV), "paspH": opt(cdata), "paspV": opt(cdata), "colorSpace": opt(cdata),
			"projection": opt(cdata), "stereoscopic": opt(cdata)}},
		"asset": {content: `(media-rep )+(metadata )?`, attrs: map[string]attrRule{"id": req(idV), "name": opt(cdata), "uid": opt(cdata),
			"start": opt(timeV), "duration": opt(timeV), "hasVideo": opt(cdata), "format": opt(idref), "hasAudio": opt(cdata),
			"videoSources": opt(cdata), "audioSources": opt(cdata), "audioChannels": opt(cdata), "audioRate": opt(cdata),
			"customLUTOverride": opt(cdata), "colorSpaceOverride": opt(cdata), "projectionOverride": opt(cdata),
			"stereoscopicOverride": opt(cdata), "auxVideoFlags": opt(cdata)}},
		"media-rep": {content: `(bookmark )?`, attrs: map[string]attrRule{"kind": enum("original-media", "proxy-media"),
			"sig": opt(cdata), "src": req(cdata), "suggestedFilename": opt(cdata)}},
		"library": {content: `((event|smart-collection) )*`, attrs: map[string]attrRule{"location": opt(cdata),
			"colorProcessing": enum("standard", "wide", "wide-hdr")}},
		"event":   {content: dtdEventItem + `*`, attrs: map[string]attrRule{"name": opt(cdata), "uid": opt(cdata)}},
		"project": {content: `sequence `, attrs: map[string]attrRule{"name": opt(cdata), "uid": opt(cdata), "id": opt(idV), "modDate": opt(cdata)}},
		"sequence": {content: `(note )?spine (metadata )?`, attrs: map[string]attrRule{"format": req(idref), "duration": opt(timeV),
			"tcStart": opt(timeV), "tcFormat": enum("DF", "NDF"), "audioLayout": enum("mono", "stereo", "surround"),
			"audioRate": enum("32k", "44.1k", "48k", "88.2k", "96k", "176.4k", "192k"), "renderFormat": opt(cdata), "keywords": opt(cdata)}},
		"spine": {content: `(` + dtdClipItem + `|transition )*`, attrs: map[string]attrRule{"lane": opt(intV), "offset": opt(timeV),
			"name": opt(cdata), "format": opt(idref)}},
		"gap": {content: `(note )?` + dtdAnchorItem + `*` + dtdMarkerItem + `*(metadata )?`, attrs: map[string]attrRule{
			"name": opt(cdata), "offset": opt(timeV), "start": opt(timeV), "duration": req(timeV), "enabled": boolean}},
		"asset-clip": {content: `(note )?` + dtdTimingIntrinsic + dtdAnchorItem + `*` + dtdMarkerItem + `*(audio-channel-source )*((filter-video|filter-video-mask) )*(filter-audio )*(metadata )?`,
			attrs: with(clipAttrs, map[string]attrRule{"ref": req(idref), "srcEnable": enum("all", "audio", "video"),
				"audioStart": opt(timeV), "audioDuration": opt(timeV), "format": opt(idref), "tcStart": opt(timeV),
				"tcFormat": enum("DF", "NDF"), "modDate": opt(cdata), "audioRole": opt(cdata), "videoRole": opt(cdata)})},
		"adjust-volume": {content: `(param )*`, attrs: map[string]attrRule{"amount": opt(dbV)}},
		"marker": {attrs: map[string]attrRule{"start": req(timeV), "duration": opt(timeV), "value": req(cdata),
			"completed": enum("0", "1"), "note": opt(cdata)}},
	}
}

var (
	timeRE = regexp.MustCompile(`^(-?\d+)(/(\d+))?s$`)
	dbRE   = regexp.MustCompile(`^-?\d+(\.\d+)?dB$`)
	nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*$`)
)

// checkTime checks a %time; value: a rational number of seconds, numerator
// within 64 bits, denominator within 32 bits and not 0.
func checkTime(v string) error {
	m := timeRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("time %q: want a rational number of seconds (\"1001/30000s\", \"5s\")", v)
	}
	if _, err := strconv.ParseInt(m[1], 10, 64); err != nil {
		return fmt.Errorf("time %q: numerator beyond 64 bits", v)
	}
	if m[3] != "" {
		d, err := strconv.ParseUint(m[3], 10, 32)
		if err != nil || d == 0 {
			return fmt.Errorf("time %q: denominator not a 32-bit positive number", v)
		}
	}
	return nil
}

// checkFCPXMLDTD checks a document against the rules above.
func checkFCPXMLDTD(data []byte) error {
	root, doctype, err := parseXML(data)
	if err != nil {
		return err
	}
	if doctype != "DOCTYPE fcpxml" {
		return fmt.Errorf("doctype %q, want <!DOCTYPE fcpxml>", doctype)
	}
	if root.name != "fcpxml" {
		return fmt.Errorf("root <%s>, want <fcpxml>", root.name)
	}
	rules := fcpxmlRules()
	content := map[string]*regexp.Regexp{}
	for name, r := range rules {
		content[name] = regexp.MustCompile(`^(` + r.content + `)$`)
	}
	// Elements whose %anchor_item; children must have a non-zero lane (the
	// DTD: "When present, anchored items must have a non-zero 'lane'
	// value").
	anchoredParents := []string{"gap", "asset-clip", "clip", "ref-clip", "mc-clip", "sync-clip", "title", "audio", "video"}
	anchors := regexp.MustCompile(`^` + dtdAnchorItem + `$`)
	ids := map[string]string{}
	var refs []string
	var errs []error
	var walk func(n *node, path string)
	walk = func(n *node, path string) {
		path += "/" + n.name
		rule, ok := rules[n.name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: element not in our DTD rule table (add its rules from the DTD)", path))
			return
		}
		var kids strings.Builder
		for _, c := range n.children {
			kids.WriteString(c.name + " ")
		}
		if !content[n.name].MatchString(kids.String()) {
			errs = append(errs, fmt.Errorf("%s: children [%s] do not match the content model (%s)", path, strings.TrimSpace(kids.String()), rule.content))
		}
		if strings.TrimSpace(n.text) != "" {
			errs = append(errs, fmt.Errorf("%s: text %q in an element without #PCDATA", path, strings.TrimSpace(n.text)))
		}
		seen := map[string]bool{}
		for _, a := range n.attrs {
			name := a.Name.Local
			if a.Name.Space != "" {
				name = a.Name.Space + ":" + name
			}
			ar, ok := rule.attrs[name]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: attribute %s not declared", path, name))
				continue
			}
			seen[name] = true
			v := a.Value
			bad := func(format string, args ...any) {
				errs = append(errs, fmt.Errorf("%s@%s=%q: %s", path, name, v, fmt.Sprintf(format, args...)))
			}
			switch ar.typ {
			case timeV:
				if err := checkTime(v); err != nil {
					bad("%v", err)
				}
			case idV:
				if !nameRE.MatchString(v) {
					bad("not an XML name (ID)")
				} else if prev, dup := ids[v]; dup {
					bad("ID also used by %s", prev)
				}
				ids[v] = path
			case idref:
				if !nameRE.MatchString(v) {
					bad("not an XML name (IDREF)")
				}
				refs = append(refs, v+" "+path)
			case enumV:
				if !contains(ar.values, v) {
					bad("want one of %v", ar.values)
				}
			case fixedV:
				if v != ar.values[0] {
					bad("#FIXED %q", ar.values[0])
				}
			case intV:
				if _, err := strconv.Atoi(v); err != nil {
					bad("want a whole number")
				}
			case dbV:
				if !dbRE.MatchString(v) {
					bad("want a level in dB (\"-6dB\")")
				}
			}
		}
		for name, ar := range rule.attrs {
			if ar.required && !seen[name] {
				errs = append(errs, fmt.Errorf("%s: #REQUIRED attribute %s missing", path, name))
			}
		}
		if contains(anchoredParents, n.name) {
			for _, c := range n.children {
				if anchors.MatchString(c.name + " ") {
					if l, _ := c.attr("lane"); l == "" || l == "0" {
						errs = append(errs, fmt.Errorf("%s/%s: an anchored item needs a non-zero lane", path, c.name))
					}
				}
			}
		}
		for _, c := range n.children {
			walk(c, path)
		}
	}
	walk(root, "")
	for _, r := range refs {
		id, where, _ := strings.Cut(r, " ")
		if _, ok := ids[id]; !ok {
			errs = append(errs, fmt.Errorf("%s: IDREF %q names no ID", where, id))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// TestFCPXMLDTD checks every fixture's FCPXML against the DTD's rules.
func TestFCPXMLDTD(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			if err := checkFCPXMLDTD(write(t, WriteFCPXML, fx.p)); err != nil {
				t.Errorf("the FCPXML breaks the DTD's rules:\n%v", err)
			}
		})
	}
}

// TestFCPXMLDTDCheck shows the check catches what the DTD forbids.
func TestFCPXMLDTDCheck(t *testing.T) {
	good := string(write(t, WriteFCPXML, editsProject(t)))
	cases := []struct {
		name, from, to, want string
	}{
		{"a required attribute missing", `<media-rep kind="original-media" src="alice.mp4"/>`, `<media-rep kind="original-media"/>`, "#REQUIRED attribute src missing"},
		{"an undeclared attribute", `<gap name="Session"`, `<gap color="red" name="Session"`, "attribute color not declared"},
		{"a time off the format", `duration="990/30s">`, `duration="33.0s">`, "want a rational number of seconds"},
		{"a bad enumerated value", `srcEnable="video"`, `srcEnable="picture"`, "want one of"},
		{"a wrong version", `<fcpxml version="1.10">`, `<fcpxml version="1.11">`, `#FIXED "1.10"`},
		{"children out of order", `<asset-clip ref="r7" lane="-3" offset="0s" name="carol.wav" start="60/30s" duration="240/30s" audioRole="dialogue">`,
			`<asset-clip ref="r7" lane="-3" offset="0s" name="carol.wav" start="60/30s" duration="240/30s" audioRole="dialogue"><marker start="0s" value="m"/>`,
			"do not match the content model"},
		{"an IDREF to nothing", `<asset-clip ref="r2"`, `<asset-clip ref="r99"`, `IDREF "r99" names no ID`},
		{"an anchored clip on lane 0", `lane="1"`, `lane="0"`, "non-zero lane"},
		{"an unknown element", `<adjust-volume amount="-6dB"/>`, `<adjust-loudness amount="1" uniformity="1"/>`, "not in our DTD rule table"},
		{"a marker with children", `value="layout: speaker"/>`, `value="layout: speaker"><note>x</note></marker>`, "do not match the content model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.from) {
				t.Fatalf("the fixture no longer contains %q", c.from)
			}
			err := checkFCPXMLDTD([]byte(strings.Replace(good, c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
