package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapedeck/tapedeck/storage/storagetest"
)

// TestCLIErrorsNameTheProblem runs commands with bad store URLs, missing or refused credentials, a
// missing bucket, an unreachable NATS server and missing arguments against a real S3 server: each must
// fail with a message that names what is wrong.
func TestCLIErrorsNameTheProblem(t *testing.T) {
	gw := storagetest.StartVersityGW(t)
	gw.CreateBucket(t, "calls")
	storagetest.IsolateAWSEnv(t)
	t.Setenv("TAPEDECK_STORE", "")
	t.Setenv("TAPEDECK_NATS", "")
	local := t.TempDir()
	badRenders := filepath.Join(local, "bad-renders.yaml")
	if err := os.WriteFile(badRenders, []byte("rooms:\n  standup:\n    - name: small\n      profile: 640x360\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s3 := []string{"--s3-endpoint", gw.Endpoint, "--s3-path-style"}
	creds := func(secret string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", gw.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		}
	}
	tests := []struct {
		name  string
		env   func(t *testing.T)
		args  []string
		wants []string
	}{
		{"unsupported scheme", nil, []string{"sessions", "list", "--store", "ftp://host/dir"},
			[]string{"--store", `unsupported scheme "ftp"`}},
		{"bad bucket name", nil, []string{"sessions", "list", "--store", "s3://No_Such"},
			[]string{"--store", `"No_Such" is not a valid bucket name`}},
		{"credentials in URL", nil, []string{"download", "x/y", "--store", "s3://key:secret@calls"},
			[]string{"credentials in the URL are not supported", "REDACTED"}},
		{"relative file URL", nil, []string{"sessions", "list", "--store", "file://rel/dir"},
			[]string{"file:///abs/dir"}},
		{"no store", nil, []string{"sessions", "list"},
			[]string{"--store URL is required"}},
		{"no credentials", nil, append([]string{"sessions", "list", "--store", "s3://calls"}, s3...),
			[]string{"no AWS credentials found", "AWS_ACCESS_KEY_ID"}},
		{"refused credentials", creds("wrong-secret"), append([]string{"sessions", "list", "--store", "s3://calls"}, s3...),
			[]string{`access to bucket "calls"`, "denied", "check the credentials"}},
		{"missing bucket", creds(gw.SecretKey), append([]string{"sessions", "list", "--store", "s3://missing-bucket"}, s3...),
			[]string{`bucket "missing-bucket" does not exist`, gw.Endpoint}},
		{"unreachable endpoint", creds(gw.SecretKey), []string{"sessions", "list", "--store", "s3://calls", "--s3-endpoint", "http://127.0.0.1:1", "--s3-path-style"},
			[]string{"cannot reach endpoint http://127.0.0.1:1"}},
		{"bad endpoint", creds(gw.SecretKey), []string{"sessions", "list", "--store", "s3://calls", "--s3-endpoint", "ftp://x"},
			[]string{`endpoint "ftp://x" is not valid`}},
		{"unknown session", nil, []string{"download", "nope", "--store", local},
			[]string{"session nope is not in"}},
		{"incomplete session", nil, []string{"sessions", "show", "room/sess", "--store", local},
			[]string{"room/sess", "not completely stored"}},
		{"not a session folder", nil, []string{"upload", local, "--to", local},
			[]string{"neither a session folder", "nor a data folder"}},
		{"upload missing folder", nil, []string{"upload", filepath.Join(local, "nope"), "--to", local},
			[]string{"no such file or directory"}},
		{"worker without NATS", nil, []string{"worker", "--store", local},
			[]string{"--nats URL is required"}},
		{"worker without store", nil, []string{"worker", "--nats", "nats://127.0.0.1:1"},
			[]string{"--store URL is required"}},
		{"worker, NATS unreachable", nil, []string{"worker", "--nats", "nats://127.0.0.1:1", "--store", local},
			[]string{"connect to NATS at nats://127.0.0.1:1"}},
		{"serve, bad webhook", nil, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--webhook", "ftp://x"},
			[]string{`webhook URL "ftp://x"`}},
		{"serve, missing render configuration", nil, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--renders", filepath.Join(local, "renders.yaml")},
			[]string{"--renders", "renders.yaml", "no such file"}},
		{"serve, unknown profile in the render configuration", nil, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--renders", badRenders},
			[]string{"--renders", "room standup", `"640x360"`, "mp4-360p"}},
		{"serve, embedded NATS on a public address", nil, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--nats-listen", "0.0.0.0:4222"},
			[]string{"must be a loopback address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				tt.env(t)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := runCLI(ctx, tt.args...)
			if err == nil {
				t.Fatalf("tapedeck %s succeeded, want an error\n%s", strings.Join(tt.args, " "), out)
			}
			t.Logf("%v", err)
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("tapedeck %s:\n  error %q\n  does not say %q", strings.Join(tt.args, " "), err, w)
				}
			}
			if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), gw.SecretKey) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}
