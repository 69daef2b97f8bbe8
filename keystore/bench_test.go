package keystore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkLookupKey measures the proxy's hot path on each backend.
func BenchmarkLookupKey(b *testing.B) {
	for name, newStore := range map[string]func(testing.TB) Store{
		"file":  func(tb testing.TB) Store { return newFileStore(tb) },
		"redis": func(tb testing.TB) Store { return newRedisStore(tb) },
	} {
		b.Run(name, func(b *testing.B) {
			s := newStore(b)
			ctx := context.Background()
			u, _ := newTestUser("bench")
			if err := s.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.LookupKey(ctx, u.KeyHash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRedisUsageReport measures a year's usage report on the Redis
// store: one user's (GET /me/usage) and every user's (GET /admin/usage),
// over benchUsageUsers users with every counter of benchUsageModels models
// on each of 365 days. bench/usage_reports.sh measures the same through
// Caddy with 200 users.
func BenchmarkRedisUsageReport(b *testing.B) {
	const benchUsageUsers = 50
	benchUsageModels := []string{"gpt-4o-mini", "gpt-4o", "o3-mini"}
	first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const days = 365
	s := newRedisStore(b)
	ctx := context.Background()
	for u := range benchUsageUsers {
		name := fmt.Sprintf("user%03d", u)
		rows := make([]UsageRow, 0, days*len(benchUsageModels))
		for d := range days {
			for m, model := range benchUsageModels {
				n := int64(1 + (u+d+m)%40)
				rows = append(rows, UsageRow{
					UsageKey: UsageKey{User: name, UserID: idOf(name), Model: model, Date: UsageDate(first.AddDate(0, 0, d))},
					UsageCounts: UsageCounts{
						Requests: n, PromptTokens: 900 * n, CompletionTokens: 200 * n, TotalTokens: 1100 * n,
						CachedTokens: 300 * n, ReasoningTokens: 50 * n, EstimatedRequests: 1,
					},
				})
			}
		}
		if err := s.AddUsage(ctx, UsageBatch{Writer: "bench", Seq: uint64(u + 1), Rows: rows}); err != nil {
			b.Fatal(err)
		}
	}
	year := UsageFilter{From: UsageDate(first), To: UsageDate(first.AddDate(0, 0, days-1))}
	oneUser := year
	oneUser.User, oneUser.UserID = "user000", idOf("user000")
	for _, bc := range []struct {
		name string
		f    UsageFilter
		rows int
	}{
		{"one_user_year", oneUser, days * len(benchUsageModels)},
		{"all_users_year", year, benchUsageUsers * days * len(benchUsageModels)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rows, err := s.QueryUsage(ctx, bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(rows) != bc.rows {
					b.Fatalf("%d rows, want %d", len(rows), bc.rows)
				}
			}
			b.ReportMetric(float64(bc.rows), "rows/op")
		})
	}
}
