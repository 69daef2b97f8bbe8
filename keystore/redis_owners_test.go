package keystore

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestRedisClusterUsageOwnersShardDown: with the shard of the global owners
// index down, usage of users whose own shards are up is written: the
// owners are registered with a later batch.
func TestRedisClusterUsageOwnersShardDown(t *testing.T) {
	c, s, cluster := startPartialCluster(t, 0)
	ctx := context.Background()
	global, err := cluster.MasterForKey(ctx, s.keys.owners)
	if err != nil {
		t.Fatal(err)
	}
	down := global.Options().Addr
	var rows []UsageRow
	for i := range 30 {
		name := fmt.Sprintf("u%02d", i)
		node, err := cluster.MasterForKey(ctx, s.keys.applied(name))
		if err != nil {
			t.Fatal(err)
		}
		if node.Options().Addr == down {
			continue // only users on live shards
		}
		rows = append(rows, UsageRow{UsageKey: UsageKey{User: name, UserID: NewUserID(), Model: "m", Date: "2026-12-01"},
			UsageCounts: UsageCounts{Requests: 1}})
	}
	for i, a := range c.Addrs {
		if a == down {
			c.Kill(i)
		}
	}
	err = s.AddUsage(ctx, UsageBatch{Writer: NewUsageWriter(), Seq: 1, Rows: rows})
	var part *UsageUsersError
	if err != nil && !errors.As(err, &part) {
		t.Fatalf("%d users, all on live shards: AddUsage = %v; the whole batch (everyone's counts) is held back", len(rows), err)
	}
}
