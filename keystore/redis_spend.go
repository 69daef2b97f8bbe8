package keystore

import (
	"context"
	"errors"
	"time"
)

var errSpendNotBuilt = errors.New("spend ledger: not built for Redis yet")

// Admit implements Store.
func (s *RedisStore) Admit(ctx context.Context, a Admission) (Verdict, error) {
	return Verdict{}, errSpendNotBuilt
}

// Settle implements Store.
func (s *RedisStore) Settle(ctx context.Context, st Settlement) error { return errSpendNotBuilt }

// RenewLease implements Store.
func (s *RedisStore) RenewLease(ctx context.Context, user, userID, lease string, now time.Time) error {
	return errSpendNotBuilt
}

// Spending implements Store.
func (s *RedisStore) Spending(ctx context.Context, q SpendQuery) (Spending, error) {
	return Spending{}, errSpendNotBuilt
}
