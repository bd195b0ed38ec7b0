// Package testbin finds the real programs the tests run beside the code
// (nats-server, versitygw): from an environment variable, else the
// repository's .bin folder where `make deps` installs them, else PATH.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Find returns the path of the program name: $env when set (it must exist),
// else <repo root>/.bin/name (the repo root holds go.mod, looking up from the
// working directory), else name in PATH. help says how to get it, in the
// error when it is nowhere.
func Find(name, env, help string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w; unset it and %s", env, p, err, help)
		}
		return p, nil
	}
	looked := []string{"$" + env + " (unset)"}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".bin", name)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				looked = append(looked, p)
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	looked = append(looked, "PATH")
	return "", fmt.Errorf("%s not found (looked at %s): %s", name, strings.Join(looked, ", "), help)
}
