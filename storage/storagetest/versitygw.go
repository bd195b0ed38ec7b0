package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapedeck/tapedeck/storage"

	"github.com/tapedeck/tapedeck/internal/testbin"
)

// VersityGW is a versitygw S3 server (posix backend) run by a test on 127.0.0.1: buckets are folders
// under Dir. Start it with StartVersityGW; it stops when the test ends.
type VersityGW struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // the posix backend's root

	bin     string
	addr    string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// versityGWHelp is how to get the binary.
const versityGWHelp = "run `make deps` (it installs versitygw into .bin with " +
	"`GOBIN=$PWD/.bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`), " +
	"or set TAPEDECK_VERSITYGW to its path"

// VersityGWBinary finds versitygw: $TAPEDECK_VERSITYGW, else <repo root>/.bin/versitygw (the repo root
// holds go.mod, looking up from the working directory), else PATH.
func VersityGWBinary() (string, error) {
	return testbin.Find("versitygw", "TAPEDECK_VERSITYGW", versityGWHelp)
}

// StartVersityGW starts versitygw on a free loopback port with a new temporary root folder and waits
// until it answers. A missing binary fails the test (it is never skipped).
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	bin, err := VersityGWBinary()
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	tmp := t.TempDir()
	g := &VersityGW{
		AccessKey: "tapedeck-test-access",
		SecretKey: "tapedeck-test-secret-" + fmt.Sprint(time.Now().UnixNano()),
		Region:    "us-east-1",
		Dir:       dataDir(t),
		bin:       bin,
		logPath:   filepath.Join(tmp, "versitygw.log"),
	}
	t.Cleanup(func() { g.Stop(t) })
	// A free port can be taken between choosing and binding it: try a few.
	for try := 1; ; try++ {
		addr, err := freePort()
		if err != nil {
			t.Fatalf("storagetest: %v", err)
		}
		g.addr, g.Endpoint = addr, "http://"+addr
		err = g.start()
		if err == nil {
			return g
		}
		if try == 3 {
			t.Fatalf("storagetest: start versitygw: %v\n%s", err, g.logTail())
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func (g *VersityGW) start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(g.bin, "--port", g.addr, "--quiet", "--health", "/health", "posix", g.Dir)
	env := []string{"ROOT_ACCESS_KEY=" + g.AccessKey, "ROOT_SECRET_KEY=" + g.SecretKey, "VGW_REGION=" + g.Region}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VGW_") && !strings.HasPrefix(kv, "ROOT_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", g.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	g.cmd, g.done = cmd, done

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			g.cmd, g.done = nil, nil
			return fmt.Errorf("versitygw exited at start")
		default:
		}
		resp, err := client.Get(g.Endpoint + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			g.cmd, g.done = nil, nil
			return fmt.Errorf("versitygw did not answer on %s within 15 s (last: %v)", g.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would: uploads in progress stay in Dir) and waits for it to exit.
// Stopping a stopped server does nothing.
func (g *VersityGW) Stop(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.done
	g.cmd, g.done = nil, nil
}

// Restart starts a stopped server again on the same port and folder.
func (g *VersityGW) Restart(t testing.TB) {
	t.Helper()
	if err := g.start(); err != nil {
		t.Fatalf("storagetest: restart versitygw: %v\n%s", err, g.logTail())
	}
}

func (g *VersityGW) logTail() string {
	b, _ := os.ReadFile(g.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "versitygw log:\n" + string(bytes.TrimSpace(b))
}

// S3API is a raw SDK client for the server, for checks the storage.Client interface does not offer.
func (g *VersityGW) S3API() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(g.Endpoint),
		Region:       g.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
	})
}

// CreateBucket creates a bucket through the S3 API.
func (g *VersityGW) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.S3API().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("storagetest: create bucket %s: %v", name, err)
	}
}

// SetEnv points the AWS SDK's standard credential chain at this server's root user, for the rest of the
// test, and isolates it from the machine: no shared config files, no profile, no instance metadata
// (which would leave the loopback interface). Tests that call it cannot be parallel.
func (g *VersityGW) SetEnv(t testing.TB) {
	t.Helper()
	IsolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", g.SecretKey)
}

// IsolateAWSEnv clears every AWS setting of the environment for the rest of the test (no credentials,
// no shared files, no instance metadata).
func IsolateAWSEnv(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k) // t.Setenv restores it afterwards
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Options are the storage.Options that reach this server.
func (g *VersityGW) Options() storage.Options {
	return storage.Options{Endpoint: g.Endpoint, Region: g.Region, PathStyle: true}
}

// Open sets the credentials (SetEnv), creates the bucket if needed and opens s3://bucket/prefix on
// the server. opts.Endpoint, Region and PathStyle are filled in.
func (g *VersityGW) Open(t testing.TB, bucket, prefix string, opts storage.Options) storage.Client {
	t.Helper()
	g.SetEnv(t)
	if _, err := os.Stat(filepath.Join(g.Dir, bucket)); err != nil {
		g.CreateBucket(t, bucket)
	}
	o := g.Options()
	opts.Endpoint, opts.Region, opts.PathStyle = o.Endpoint, o.Region, o.PathStyle
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	c, err := storage.Open(ctx, u, opts)
	if err != nil {
		t.Fatalf("storagetest: %v", err)
	}
	return c
}
