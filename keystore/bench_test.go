package keystore

import (
	"context"
	"testing"
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
