//go:build linux || darwin

package storage

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func setSumAttr(f *os.File, r sumRecord) error {
	return unix.Fsetxattr(int(f.Fd()), sumAttr, r.marshal(), 0)
}

func getSumAttr(f *os.File) (sumRecord, error) {
	buf := make([]byte, 256)
	n, err := unix.Fgetxattr(int(f.Fd()), sumAttr, buf)
	if err != nil {
		return sumRecord{}, err
	}
	return parseSumRecord(buf[:n])
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
