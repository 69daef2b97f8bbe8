package keystore

import (
	"context"
	"fmt"
	"sync/atomic"
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

// BenchmarkAdmitSettle measures the spend ledger's two calls on a request
// under every limit (Admit, then Settle with what it used), from parallel
// goroutines: each one user of its own ("users"), or all one user
// ("one_user"), whose calls contend for the same keys or entries.
func BenchmarkAdmitSettle(b *testing.B) {
	allow := Allowance{
		RPM: MaxLimit, TPM: MaxLimit, MaxParallel: 1 << 20,
		BudgetRequests: MaxLimit, BudgetTokens: MaxLimit, BudgetNanoUSD: 1e15,
	}
	for _, backend := range []struct {
		name     string
		newStore func(testing.TB) Store
	}{
		{"file", func(tb testing.TB) Store { return newFileStore(tb) }},
		{"redis", func(tb testing.TB) Store { return newRedisStore(tb) }},
	} {
		for _, shared := range []bool{false, true} {
			mode := "users"
			if shared {
				mode = "one_user"
			}
			b.Run(backend.name+"/"+mode, func(b *testing.B) {
				s := backend.newStore(b)
				ctx := context.Background()
				var goroutines atomic.Int64
				sharedID := NewUserID()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					g := goroutines.Add(1)
					name, id := fmt.Sprint("bench", g), NewUserID()
					if shared {
						name, id = "bench", sharedID
					}
					for i := 0; pb.Next(); i++ {
						a := Admission{
							User: name, UserID: id, Allowance: allow, Now: time.Now(),
							Lease:        fmt.Sprint(g, "-", i),
							PromptTokens: 500, MinOutput: 1, MaxOutput: 1000,
							InputNanoUSD: 150, OutputNanoUSD: 600,
						}
						v, err := s.Admit(ctx, a)
						if err != nil || v.Denied != "" {
							b.Errorf("Admit: %+v, %v", v, err)
							return
						}
						err = s.Settle(ctx, Settlement{
							User: name, UserID: id, Admitted: a.Now, Lease: a.Lease,
							Reserved: v.Reserved, Used: Amounts{1, 800, 255_000},
						})
						if err != nil {
							b.Errorf("Settle: %v", err)
							return
						}
					}
				})
			})
		}
	}
}
