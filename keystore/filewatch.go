package keystore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// fileCheckInterval is how often a file store checks that its file is
// still the one it has open.
const fileCheckInterval = 10 * time.Second

// openFile identifies the database file a pooled handle has open, so that
// its deletion or replacement under a running server is noticed: bbolt goes
// on reading and writing the open, deleted file, and everything written to
// it is lost when Caddy stops.
type openFile struct {
	path   string
	opened os.FileInfo // the file as it was opened
	gone   atomic.Bool // reported deleted or replaced; shared by every FileStore on the handle
}

// statOpenFile identifies the file just opened at path.
func statOpenFile(path string) (*openFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &openFile{path: path, opened: fi}, nil
}

// watchFile checks the file every interval until ctx ends.
func (s *FileStore) watchFile(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.checkFile()
		}
	}
}

// checkFile logs an Error when the file at the store's path is no longer
// the one open (deleted, or replaced by another), once per incident, and an
// Info when it is back (a hard link put back in place).
func (s *FileStore) checkFile() {
	f := s.file
	fi, err := os.Stat(f.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Debug("checking the key store file", zap.String("path", f.path), zap.Error(err))
		return
	}
	same := err == nil && os.SameFile(fi, f.opened)
	switch {
	case !same && f.gone.CompareAndSwap(false, true):
		s.logger.Error("the key store file was deleted or replaced while in use: "+
			"aiproxy goes on with the deleted file, and everything in it (users, hosts, usage) "+
			"is lost when Caddy stops",
			zap.String("path", f.path),
			zap.Int("pid", os.Getpid()),
			zap.String("fix", "copy the open file back to the path, then restart Caddy at once; "+
				"on Linux, ls -l /proc/<pid>/fd shows it as '<path> (deleted)'"))
	case same && f.gone.CompareAndSwap(true, false):
		s.logger.Info("the key store file is back in place", zap.String("path", f.path))
	}
}
