package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapedeck/tapedeck/storage"
)

// storeFlags say where sessions are stored: a folder or file:///dir, or s3://bucket/prefix with the
// S3 options. Each flag also reads an environment variable.
type storeFlags struct {
	name      string // the URL flag's name: "store" or "to"
	url       string
	endpoint  string
	region    string
	pathStyle bool
}

// register adds --NAME (default $TAPEDECK_STORE) and the S3 flags.
func (s *storeFlags) register(fl *pflag.FlagSet, name, usage string) {
	s.name = name
	fl.StringVar(&s.url, name, os.Getenv("TAPEDECK_STORE"), usage+" (also $TAPEDECK_STORE)")
	fl.StringVar(&s.endpoint, "s3-endpoint", os.Getenv("TAPEDECK_S3_ENDPOINT"),
		"S3-compatible server, http(s)://host:port (also $TAPEDECK_S3_ENDPOINT; AWS: leave empty)")
	fl.StringVar(&s.region, "s3-region", os.Getenv("TAPEDECK_S3_REGION"), "S3 region (also $TAPEDECK_S3_REGION, else the AWS SDK's)")
	ps, _ := strconv.ParseBool(os.Getenv("TAPEDECK_S3_PATH_STYLE"))
	fl.BoolVar(&s.pathStyle, "s3-path-style", ps, "address buckets as ENDPOINT/bucket (most S3-compatible servers; also $TAPEDECK_S3_PATH_STYLE)")
}

// open opens the store, def when the flag and $TAPEDECK_STORE are empty; with neither, it is a usage
// error.
func (s *storeFlags) open(ctx context.Context, def string, log *slog.Logger) (storage.Client, error) {
	u := s.url
	if u == "" {
		u = def
	}
	if u == "" {
		return nil, usageError("--%s URL is required: a folder, file:///abs/dir or s3://bucket/prefix", s.name)
	}
	c, err := storage.Open(ctx, u, storage.Options{Endpoint: s.endpoint, Region: s.region, PathStyle: s.pathStyle, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", s.name, err)
	}
	return c, nil
}

// storeOpenTimeout bounds opening a store that a session's ledger names (S3 checks its bucket).
const storeOpenTimeout = 30 * time.Second

// opener opens stores by URL with these flags' S3 options, for commands that fetch a session
// folder's missing track files from --store or the stores its ledger names.
func (s *storeFlags) opener(log *slog.Logger) func(ctx context.Context, u string) (storage.Client, error) {
	return func(ctx context.Context, u string) (storage.Client, error) {
		ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
		defer cancel()
		return storage.Open(ctx, u, storage.Options{Endpoint: s.endpoint, Region: s.region, PathStyle: s.pathStyle, Logger: log})
	}
}

// storeURL is the --store flag as storage.Client.String() writes it (a folder as file:///abs/dir),
// so that it compares with the stores a ledger names; "" when unset.
func (s *storeFlags) storeURL() string {
	if s.url == "" || strings.Contains(s.url, "://") {
		return s.url
	}
	abs, err := filepath.Abs(s.url)
	if err != nil {
		return s.url
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// defaultStore is the store of a recorder whose data folder is data: the folder "store" next to it
// (--data recordings: ./store; --data /srv/rec: /srv/store).
func defaultStore(data string) string {
	abs, err := filepath.Abs(data)
	if err != nil {
		abs = data
	}
	return filepath.Join(filepath.Dir(filepath.Clean(abs)), "store")
}
