package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, as the root command's help lists them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError is an error returned by a command's own code, with the exit
// code it gives the process (see failures).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is an error in how the command was called: an unknown command or
// flag, a bad flag value, missing or extra arguments, a required setting
// left out. It exits with exitUsage.
type usageErr struct{ err error }

func (e *usageErr) Error() string { return e.err.Error() }
func (e *usageErr) Unwrap() error { return e.err }

// usageError returns a usage error with a message formatted as by
// fmt.Errorf (%w wraps).
func usageError(format string, args ...any) error {
	return &usageErr{err: fmt.Errorf(format, args...)}
}

// exitCode is the process exit code for what execute returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageErr
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// globals are the flags every command shares.
type globals struct {
	logLevel  string
	logFormat string
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format %q: want text or json", g.logFormat)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "tapedeck",
		Short: "Record WebRTC calls as raw tracks, render them afterwards",
		Long: `tapedeck records WebRTC calls (WHIP ingest) as raw tracks, one file per participant and medium, with a
manifest of when everything happened; it renders them afterwards with FFmpeg, and stores them in a folder
or on S3.

Exit codes:
  0  success (also --help, and serve or worker stopped by SIGINT or SIGTERM after a clean drain)
  1  the command failed: a recording it cannot read, FFmpeg, storage, the network, an interrupted run
  2  the command line is wrong: an unknown command or flag, a bad flag value, missing or extra
     arguments, a required flag or setting left out`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "text or json")
	root.AddCommand(newServeCmd(g), newPublishCmd(g), newRecoverCmd(g), newDemoCmd(g), newLoadtestCmd(g), newInspectCmd(g), newRenderCmd(g))
	root.AddCommand(newWorkerCmd(g), newSessionsCmd(g), newDownloadCmd(g), newUploadCmd(g), newExportCmd(g))
	root.AddCommand(newNodesCmd(g))
	groupsCheckArgs(root)
	failures(root)
	return root
}

// groupsCheckArgs makes every command that only groups others (the root,
// sessions) reject an unknown subcommand as a usage error: by default cobra
// prints the group's help and succeeds (sessions) or returns an untyped
// error (the root).
func groupsCheckArgs(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() && c.Args == nil {
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default
		}
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if s := c.SuggestionsFor(args[0]); len(s) > 0 && !c.DisableSuggestions {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return &usageErr{err: errors.New(msg)}
		}
		c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	for _, sub := range c.Commands() {
		groupsCheckArgs(sub)
	}
}

// failures makes the errors of every command's own code (its run hooks)
// failures, exitError with exitFailure, unless they already carry a code
// (usage errors, from usageError). Whatever else cobra returns it raised
// itself while parsing and checking the command line: execute makes those
// usage errors.
func failures(c *cobra.Command) {
	for _, hook := range []*func(*cobra.Command, []string) error{&c.PersistentPreRunE, &c.PreRunE, &c.RunE, &c.PostRunE, &c.PersistentPostRunE} {
		if f := *hook; f != nil {
			*hook = func(c *cobra.Command, args []string) error { return asFailure(f(c, args)) }
		}
	}
	for _, sub := range c.Commands() {
		failures(sub)
	}
}

// asFailure gives err exitFailure unless it already carries an exit code.
func asFailure(err error) error {
	if err == nil || hasExitCode(err) {
		return err
	}
	return &exitError{code: exitFailure, err: err}
}

// hasExitCode reports whether err carries its exit code (usageErr, exitError).
func hasExitCode(err error) bool {
	var ue *usageErr
	var ee *exitError
	return errors.As(err, &ue) || errors.As(err, &ee)
}

// execute runs the command line args with ctx and returns what the command
// returned: nil, an error carrying its exit code (usageErr, exitError).
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil || hasExitCode(err) {
		return err
	}
	// Not from a command's code (failures wraps all of it): cobra rejected
	// the command line (flags, arguments, an unknown command).
	return &usageErr{err: err}
}

// run executes the command line, reports an error on stderr and returns
// the exit code.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := execute(ctx, args, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tapedeck:", err)
	}
	return exitCode(err)
}
