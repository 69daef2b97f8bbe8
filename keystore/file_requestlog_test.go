package keystore

import "testing"

// TestFileRequestLogTrim: the file keeps exactly the newest keep records,
// and a smaller keep trims the older ones at the next append.
func TestFileRequestLogTrim(t *testing.T) {
	s := newFileStore(t)
	for n := range 10 {
		mustAppend(t, s, 4, reqAt("ann", n))
	}
	wantRecords(t, "keep 4", mustRecent(t, s, RequestQuery{Limit: 100, Scan: 100}),
		reqAt("ann", 9), reqAt("ann", 8), reqAt("ann", 7), reqAt("ann", 6))
	mustAppend(t, s, 2, reqAt("ann", 10))
	wantRecords(t, "keep 2", mustRecent(t, s, RequestQuery{Limit: 100, Scan: 100}),
		reqAt("ann", 10), reqAt("ann", 9))
	mustAppend(t, s, 5, reqAt("ann", 11))
	wantRecords(t, "keep 5", mustRecent(t, s, RequestQuery{Limit: 100, Scan: 100}),
		reqAt("ann", 11), reqAt("ann", 10), reqAt("ann", 9))
}
