package keystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestFileStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return newFileStore(t) })
}

// TestFilePersistence reopens the file through a fresh module, as a Caddy
// restart would.
func TestFilePersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "aiproxy.db")

	first := &FileStore{Path: path}
	if err := provisionErr(t, first); err != nil {
		t.Fatal(err)
	}
	u, key := mustCreate(t, first, "ivan")
	id, err := first.AddHostKey(ctx, "h.example", "https://h.example", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := handles.References(boltPoolKey(first.db.Path())); ok {
		t.Fatal("database still pooled after the last cleanup")
	}
	if _, err := first.LookupKey(ctx, HashKey(key)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LookupKey on a closed store: %v, want ErrUnavailable", err)
	}

	second := &FileStore{Path: path}
	provision(t, second)
	if got, err := second.LookupKey(ctx, HashKey(key)); err != nil || !sameUser(got, u) {
		t.Errorf("after reopen LookupKey = %+v, %v; want %+v", got, err, u)
	}
	hosts, err := second.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].Keys[0].ID != id {
		t.Errorf("after reopen ListHosts = %+v, %v", hosts, err)
	}

	for _, p := range []string{filepath.Dir(path), path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestFileSharedAcrossReload provisions two modules on one file, as a config
// reload does (new before old's cleanup): bbolt's lock must not block.
func TestFileSharedAcrossReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	oldCfg := &FileStore{Path: filepath.Join(dir, "aiproxy.db")}
	newCfg := &FileStore{Path: filepath.Join(dir, "link", "aiproxy.db")} // same file, other spelling

	start := time.Now()
	if err := provisionErr(t, oldCfg); err != nil {
		t.Fatal(err)
	}
	if err := provisionErr(t, newCfg); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= openTimeout {
		t.Errorf("provisioning took %v: waited for the file lock", time.Since(start))
	}
	if oldCfg.db != newCfg.db {
		t.Fatal("the two modules opened the file separately")
	}
	key := boltPoolKey(oldCfg.db.Path())
	if n, _ := handles.References(key); n != 2 {
		t.Errorf("references = %d, want 2", n)
	}

	_, plain := mustCreate(t, oldCfg, "judy")
	if err := oldCfg.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := oldCfg.Cleanup(); err != nil { // idempotent: must not drop newCfg's reference
		t.Fatal(err)
	}
	if _, err := newCfg.LookupKey(ctx, HashKey(plain)); err != nil {
		t.Fatalf("new config lost the database when the old one was cleaned up: %v", err)
	}
	if err := newCfg.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := newCfg.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := handles.References(key); ok {
		t.Error("database still pooled after both cleanups")
	}
	if _, err := newCfg.LookupKey(ctx, HashKey(plain)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LookupKey after the last cleanup: %v, want ErrUnavailable", err)
	}
}

// TestFileLocked checks that a file held by another process fails the
// config load after the lock timeout instead of hanging.
func TestFileLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aiproxy.db")
	// flock locks belong to an open file, so a second bbolt.Open in this
	// process stands in for another process.
	other, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	start := time.Now()
	err = provisionErr(t, &FileStore{Path: path})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("Provision on a locked file: %v, want a lock error", err)
	}
	if d := time.Since(start); d > openTimeout+time.Second {
		t.Errorf("Provision took %v", d)
	}
	if _, ok := handles.References(boltPoolKey(path)); ok {
		t.Error("failed open left a pool entry")
	}
}

// TestFileDefaultPath checks the file goes to Caddy's data directory.
func TestFileDefaultPath(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	s := &FileStore{}
	provision(t, s)
	want, _ := filepath.EvalSymlinks(data)
	want = filepath.Join(want, "caddy", "aiproxy", "aiproxy.db")
	if s.db.Path() != want {
		t.Errorf("default path = %s, want %s", s.db.Path(), want)
	}
}

// TestFilePathPlaceholder checks {env.*} expansion of the path.
func TestFilePathPlaceholder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AIPROXY_TEST_DB_DIR", dir)
	s := &FileStore{Path: "{env.AIPROXY_TEST_DB_DIR}/x.db"}
	provision(t, s)
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err != nil {
		t.Errorf("placeholder not expanded: %v", err)
	}
}

// TestFileDeletedWhileOpen: deleting (or replacing) the file under a
// running server logs one Error at once, however often it is checked,
// while the store goes on working; putting it back logs an Info.
func TestFileDeletedWhileOpen(t *testing.T) {
	s := newFileStore(t)
	core, logs := observer.New(zapcore.InfoLevel)
	s.logger = zap.New(core)
	path := s.db.Path()
	_, key := mustCreate(t, s, "kept")
	if err := os.Link(path, path+".link"); err != nil {
		t.Fatal(err)
	}

	s.checkFile()
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d log lines while the file is in place: %v", n, logs.All())
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s.checkFile()
	s.checkFile()
	// Another file in its place is no better: still the same incident.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.checkFile()
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || errs[0].ContextMap()["path"] != path {
		t.Fatalf("want one Error naming the path, got %v", logs.All())
	}
	if _, err := s.LookupKey(context.Background(), HashKey(key)); err != nil {
		t.Fatalf("the store stopped working: %v", err)
	}

	// The open file, put back by its other name, ends the incident.
	if err := os.Rename(path+".link", path); err != nil {
		t.Fatal(err)
	}
	s.checkFile()
	if infos := logs.FilterMessage("the key store file is back in place").All(); len(infos) != 1 || logs.Len() != 2 {
		t.Fatalf("want one Info when the file is back, got %v", logs.All())
	}
}
