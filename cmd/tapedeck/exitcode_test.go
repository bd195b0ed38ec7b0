package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestExitCodeUsage: a command line tapedeck cannot run exits 2, carried
// by a usageErr whatever the message says.
func TestExitCodeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},                                         // unknown command
		{"sessions", "bogus", "x"},                        // unknown subcommand of a group
		{"render", "--bogus", "x"},                        // unknown flag
		{"serve", "--udp-port", "many"},                   // bad flag value
		{"render"},                                        // missing argument
		{"sessions", "list", "a", "b"},                    // extra argument
		{"demo", "extra"},                                 // argument to a command that takes none
		{"--log-level", "loud", "inspect", t.TempDir()},   // checked by the command's code
		{"render", filepath.Join(t.TempDir(), "nowhere")}, // a session that is neither a folder nor a stored one
	} {
		var out bytes.Buffer
		err := execute(t.Context(), args, &out, &out)
		var ue *usageErr
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v (%T); want a usage error", args, err, err)
			continue
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%q: exit code %d; want %d", args, code, exitUsage)
		}
	}
}

// TestExitCodeFailure: a command that runs and fails exits 1, carried by an
// exitError, even when its message mentions a flag or a command.
func TestExitCodeFailure(t *testing.T) {
	// A manifest that is not one, in a path that says "flag" and "unknown
	// command" (the old exit code came from matching such words).
	dir := filepath.Join(t.TempDir(), "unknown command flag")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := execute(t.Context(), []string{"inspect", dir}, &out, &out)
	var ee *exitError
	if !errors.As(err, &ee) {
		t.Fatalf("inspect of a broken manifest: %v (%T); want an exitError", err, err)
	}
	var ue *usageErr
	if errors.As(err, &ue) {
		t.Errorf("inspect of a broken manifest: %v is a usage error", err)
	}
	if code := exitCode(err); code != exitFailure {
		t.Errorf("inspect of a broken manifest: exit code %d; want %d", code, exitFailure)
	}
}

// TestExitCodeSuccess: help and a command that works exit 0.
func TestExitCodeSuccess(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"render", "--help"}, {"sessions"}, {"help", "render"}} {
		var out bytes.Buffer
		err := execute(t.Context(), args, &out, &out)
		if code := exitCode(err); err != nil || code != exitOK {
			t.Errorf("%q: %v, exit code %d; want 0", args, err, code)
		}
		if out.Len() == 0 {
			t.Errorf("%q printed nothing; want the help", args)
		}
	}
}
