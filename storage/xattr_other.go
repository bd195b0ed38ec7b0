//go:build !(linux || darwin)

package storage

import (
	"errors"
	"os"
	"syscall"
)

var errNoXattr = errors.New("extended attributes are not supported here")

func setSumAttr(*os.File, sumRecord) error { return errNoXattr }

func getSumAttr(*os.File) (sumRecord, error) { return sumRecord{}, errNoXattr }

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
