package console

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/tapedeck/tapedeck/postcall"
	"github.com/tapedeck/tapedeck/timeline"
)

// editsFileName names the edit file typed into the form in its errors ("edits.yaml:3: ...").
const editsFileName = "edits.yaml"

// maxEditsBytes bounds the edit file typed into the form.
const maxEditsBytes = 1 << 20

type rerenderForm struct {
	Name, Layout, Edits string
	Profiles            []choice
	Layouts             []choice
	Error               *formError
}

type choice struct {
	Value, Label string
	Checked      bool
}

// formError is what is wrong with a re-render, with the edit file's line when it is there.
type formError struct {
	Message string
	Field   string // of the edit file, e.g. "cuts[1].end"
	Line    int    // of the edit file; 0 when not about a line
	Input   string // the form's input at fault: "name", "profile", "layout", "edits"
	Excerpt []excerptLine
}

type excerptLine struct {
	N    int
	Text string
	Bad  bool
}

// layoutChoices are the layouts a re-render may start with: value and label.
func layoutChoices() [][2]string {
	return [][2]string{
		{"", "as the edit file says (grid)"}, {"grid", "grid"}, {"speaker", "active speaker"}, {"pip", "picture-in-picture"}, {"single", "one participant"},
	}
}

func validLayout(l string) bool {
	for _, c := range layoutChoices() {
		if c[0] == l {
			return true
		}
	}
	return false
}

func (c *Console) newForm(name, layout, edits string, profiles []string) rerenderForm {
	f := rerenderForm{Name: name, Layout: layout, Edits: edits}
	for _, p := range c.cfg.Profiles {
		f.Profiles = append(f.Profiles, choice{Value: p, Label: p, Checked: slices.Contains(profiles, p)})
	}
	for _, l := range layoutChoices() {
		f.Layouts = append(f.Layouts, choice{Value: l[0], Label: l[1], Checked: l[0] == layout})
	}
	return f
}

// defaultForm suggests a render name the session does not have yet.
func (c *Console) defaultForm(v *sessionView) rerenderForm {
	taken := map[string]bool{v.Queued: true}
	for _, cv := range v.Composites {
		taken[cv.Name] = true
	}
	if v.Job != nil {
		for n := range v.Job.Renders {
			taken[n] = true
		}
	}
	name := "alt"
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("alt-%d", i)
	}
	var profiles []string
	if len(c.cfg.Profiles) > 0 {
		profiles = c.cfg.Profiles[:1]
	}
	return c.newForm(name, "", "", profiles)
}

// editError turns an edit file's error into a form error with its line and the lines around it.
func editError(err error, edits string) *formError {
	fe := &formError{Message: err.Error(), Input: "edits"}
	var ee *timeline.EditError
	if errors.As(err, &ee) {
		fe.Message, fe.Field, fe.Line = ee.Msg, ee.Field, ee.Line
		if ee.Field != "" {
			fe.Message = ee.Field + ": " + ee.Msg
		}
	}
	if fe.Line > 0 {
		lines := strings.Split(edits, "\n")
		for n := max(1, fe.Line-2); n <= min(len(lines), fe.Line+2); n++ {
			fe.Excerpt = append(fe.Excerpt, excerptLine{N: n, Text: strings.TrimRight(lines[n-1], "\r"), Bad: n == fe.Line})
		}
	}
	return fe
}

// checkEdits parses the edit file and checks it against the recording and the plan, as a render
// would, without rendering.
func checkEdits(d *sessionData, edits, layout string) (*timeline.Edits, *formError) {
	if strings.TrimSpace(edits) == "" {
		return nil, nil
	}
	e, err := timeline.ParseEdits(editsFileName, strings.NewReader(edits))
	if err != nil {
		return nil, editError(err, edits)
	}
	if err := e.Validate(d.Manifest); err != nil {
		return nil, editError(err, edits)
	}
	sy, err := timeline.NewSync(d.Manifest)
	if err != nil {
		return nil, &formError{Message: "the recording cannot be synchronized: " + err.Error()}
	}
	if _, err := timeline.NewPlan(d.Manifest, sy, e, timeline.PlanOptions{Layout: timeline.LayoutType(layout)}); err != nil {
		return nil, editError(err, edits)
	}
	return e, nil
}

// checkForm returns the render a form asks for, or what is wrong with it.
func (c *Console) checkForm(d *sessionData, f rerenderForm, profiles []string) (postcall.RenderSpec, *formError) {
	spec := postcall.RenderSpec{Name: f.Name, Layout: f.Layout, Edits: f.Edits, Profile: strings.Join(profiles, ",")}
	if !validName(f.Name) {
		return spec, &formError{Input: "name", Message: "The render's name must be 1–64 letters, digits, '_', '-', '.', starting with a letter or digit."}
	}
	if len(profiles) == 0 {
		return spec, &formError{Input: "profile", Message: "Choose at least one profile."}
	}
	for _, p := range profiles {
		if !slices.Contains(c.cfg.Profiles, p) {
			return spec, &formError{Input: "profile", Message: fmt.Sprintf("Unknown profile %q.", p)}
		}
	}
	if !validLayout(f.Layout) {
		return spec, &formError{Input: "layout", Message: fmt.Sprintf("Unknown layout %q.", f.Layout)}
	}
	if strings.TrimSpace(f.Edits) != "" {
		if _, fe := checkEdits(d, f.Edits, f.Layout); fe != nil {
			return spec, fe
		}
		spec.EditsFile = editsFileName
	} else {
		spec.Edits = ""
	}
	if c.cfg.CheckRenders != nil {
		if err := c.cfg.CheckRenders([]postcall.RenderSpec{spec}); err != nil {
			return spec, editError(err, f.Edits)
		}
	}
	return spec, nil
}

func (c *Console) handleRerender(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	if c.cfg.Jobs == nil {
		c.fail(w, r, http.StatusNotFound, "This console has no post-call jobs.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad form: "+err.Error())
		return
	}
	edits := strings.ReplaceAll(r.PostFormValue("edits"), "\r\n", "\n")
	if len(edits) > maxEditsBytes {
		c.fail(w, r, http.StatusRequestEntityTooLarge, "The edit file is larger than 1 MiB.")
		return
	}
	profiles := r.PostForm["profile"]
	form := c.newForm(strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("layout"), edits, profiles)
	ref := sessionRef{room, session}
	ctx := r.Context()
	v, media, status, msg := c.sessionView(ctx, ref)
	if v == nil {
		c.fail(w, r, status, msg)
		return
	}
	bearer := accessOf(ctx).bearer
	refuse := func(status int, fe *formError) {
		if bearer {
			writeJSON(w, status, map[string]any{"error": fe.Message, "line": fe.Line, "field": fe.Field})
			return
		}
		form.Error = fe
		v.Form = form
		c.render(w, r, status, "session", room+"/"+session, v, media...)
	}
	if !v.Stored {
		refuse(http.StatusConflict, &formError{Message: "The session is not in the store yet: wait for its post-call job to store it."})
		return
	}
	spec, fe := c.checkForm(v.Data, form, profiles)
	if fe != nil {
		refuse(http.StatusUnprocessableEntity, fe)
		return
	}
	if err := c.cfg.Jobs.Rerender(ctx, room, session, []postcall.RenderSpec{spec}); err != nil {
		if errors.Is(err, postcall.ErrNotStored) {
			refuse(http.StatusConflict, &formError{Message: "The session is not in the store yet: wait for its post-call job to store it."})
			return
		}
		c.log.Error("console: re-render", "room", room, "session", session, "err", err)
		refuse(http.StatusBadGateway, &formError{Message: "The re-render could not be queued: " + err.Error()})
		return
	}
	c.log.Info("re-render queued from the console", "room", room, "session", session, "render", spec.Name,
		"profile", spec.Profile, "layout", spec.Layout, "edits", spec.Edits != "", "client", clientAddr(r))
	if bearer {
		writeJSON(w, http.StatusAccepted, map[string]string{"room": room, "session": session, "render": spec.Name, "status": "queued"})
		return
	}
	http.Redirect(w, r, "/sessions/"+room+"/"+session+"?queued="+spec.Name+"#job", http.StatusSeeOther)
}

// checkResult is the answer of the edit-file check the form's script asks for as one types.
type checkResult struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
}

// handleCheck checks an edit file (the request's body) against the session, changing nothing.
func (c *Console) handleCheck(w http.ResponseWriter, r *http.Request) {
	room, session, err := roomSession(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad room or session name.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEditsBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, checkResult{Message: "The edit file is larger than 1 MiB."})
		return
	}
	d, _, _, err := c.loadSession(r.Context(), sessionRef{room, session})
	if err != nil {
		writeJSON(w, http.StatusNotFound, checkResult{Message: "The session could not be read."})
		return
	}
	edits := strings.ReplaceAll(string(body), "\r\n", "\n")
	layout := r.URL.Query().Get("layout")
	if !validLayout(layout) {
		layout = ""
	}
	if _, fe := checkEdits(d, edits, layout); fe != nil {
		writeJSON(w, http.StatusOK, checkResult{Message: fe.Message, Line: fe.Line, Field: fe.Field})
		return
	}
	writeJSON(w, http.StatusOK, checkResult{OK: true})
}
