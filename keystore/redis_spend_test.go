package keystore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// TestRedisSpendMatchesLedger runs random calls on the Redis ledger and
// on the in-process one (spend_ledger.go) side by side, and wants the same
// answer from both to every call: the Lua scripts are the Go rules, down
// to the rounding of prices. Times are whole milliseconds, Redis' grain.
func TestRedisSpendMatchesLedger(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			compareLedgers(t, newRedisStore(t), rand.New(rand.NewPCG(seed, 42)), 2000)
		})
	}
}

// ledgerUser is one user of compareLedgers: its allowance, which changes
// now and then, and its requests in flight.
type ledgerUser struct {
	name, id string
	allow    Allowance
	open     []openRequest
}

// openRequest is an admitted request not settled yet.
type openRequest struct {
	admitted time.Time
	period   Period
	lease    string
	reserved Amounts
}

// pick returns one of vs at random.
func pick[T any](rng *rand.Rand, vs ...T) T { return vs[rng.IntN(len(vs))] }

// randomAllowance draws limits small enough for the calls to meet them.
func randomAllowance(rng *rand.Rand) Allowance {
	return Allowance{
		RPM:            pick[int64](rng, 0, 0, 2, 5, 20),
		TPM:            pick[int64](rng, 0, 0, 300, 1000, 5000),
		MaxParallel:    pick[int64](rng, 0, 0, 1, 3),
		BudgetRequests: pick[int64](rng, 0, 0, 100, 1000),
		BudgetTokens:   pick[int64](rng, 0, 0, 20_000, 400_000),
		BudgetNanoUSD:  pick[int64](rng, 0, 0, 2_000_000, 50_000_000),
		Period:         pick(rng, "", PeriodDay, PeriodWeek, PeriodMonth, PeriodTotal),
	}
}

// compareLedgers makes n random calls on s and on a fresh spendLedger and
// fails at the first answer that differs.
func compareLedgers(t *testing.T, s Store, rng *rand.Rand, n int) {
	ctx := context.Background()
	ref := newSpendLedger(nil)
	// Close to the end of a day, a week (a Sunday) and a month.
	now := time.Date(2035, 9, 30, 23, 40, 0, 0, time.UTC)
	users := make([]*ledgerUser, 3)
	for i := range users {
		users[i] = &ledgerUser{name: fmt.Sprint("cmp", i), id: NewUserID(), allow: randomAllowance(rng)}
	}
	leases := 0
	for i := range n {
		switch r := rng.IntN(100); {
		case r < 60:
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		case r < 90:
			now = now.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
		case r < 98:
			now = now.Add(time.Duration(60_000+rng.IntN(5_000)) * time.Millisecond)
		default:
			now = now.Add(time.Duration(rng.IntN(int(LeaseTTL/time.Millisecond))) * time.Millisecond)
		}
		u := pick(rng, users...)
		if rng.IntN(50) == 0 {
			u.allow = randomAllowance(rng)
		}
		what := ""
		switch r := rng.IntN(100); {
		case r < 55:
			leases++
			a := Admission{
				User: u.name, UserID: u.id, Allowance: u.allow, Now: now,
				Lease:        fmt.Sprint("l", leases),
				PromptTokens: pick(rng, 0, int64(rng.IntN(400)), int64(rng.IntN(400)), int64(rng.IntN(6000))),
				MinOutput:    pick[int64](rng, 0, 1, 1, 50),
				MaxOutput:    pick(rng, -1, -1, int64(rng.IntN(800))),
				InputNanoUSD: pick(rng, 0, 0.15, 2.5, 150, 1e-3), OutputNanoUSD: pick(rng, 0, 0.6, 10, 600, 0.07),
			}
			what = fmt.Sprintf("Admit(%+v)", a)
			got, err := s.Admit(ctx, a)
			if err != nil {
				t.Fatalf("call %d: %s: %v", i, what, err)
			}
			want := ref.admit(a)
			if got != want {
				t.Fatalf("call %d: %s:\n got %+v\nwant %+v", i, what, got, want)
			}
			if got.Denied == "" {
				u.open = append(u.open, openRequest{now, a.BudgetPeriod(), a.Lease, got.Reserved})
			}
		case r < 80:
			if len(u.open) == 0 {
				continue
			}
			j := rng.IntN(len(u.open))
			o := u.open[j]
			u.open = append(u.open[:j], u.open[j+1:]...)
			used := Amounts{
				Requests: pick[int64](rng, 1, 1, 1, 0),
				Tokens:   rng.Int64N(2*o.reserved.Tokens + 100),
				NanoUSD:  rng.Int64N(2*o.reserved.NanoUSD + 100),
			}
			st := Settlement{User: u.name, UserID: u.id, Admitted: o.admitted, Period: o.period, Lease: o.lease, Reserved: o.reserved, Used: used}
			if err := s.Settle(ctx, st); err != nil {
				t.Fatalf("call %d: Settle(%+v): %v", i, st, err)
			}
			ref.settle(st)
		case r < 85:
			if len(u.open) == 0 {
				continue
			}
			lease := pick(rng, u.open...).lease
			if err := s.RenewLease(ctx, u.name, u.id, lease, now); err != nil {
				t.Fatalf("call %d: RenewLease: %v", i, err)
			}
			ref.renew(u.id, lease, now)
		default:
			q := SpendQuery{User: u.name, UserID: u.id, Period: pick(rng, "", PeriodDay, PeriodWeek, PeriodMonth, PeriodTotal), Now: now}
			got, err := s.Spending(ctx, q)
			if err != nil {
				t.Fatalf("call %d: Spending(%+v): %v", i, q, err)
			}
			if want := ref.spending(q); got != want {
				t.Fatalf("call %d: Spending(%+v):\n got %+v\nwant %+v", i, q, got, want)
			}
		}
	}
	t.Logf("%d calls up to %v", n, now)
}

// TestRedisSpendTwoClients admits requests at once through two stores
// with clients of their own on one Redis: they count as one ledger.
func TestRedisSpendTwoClients(t *testing.T) {
	prefix := uniquePrefix()
	stores := make([]Store, 2)
	for i := range stores {
		// Different timeouts keep the two out of one pooled client.
		s := &RedisStore{Addresses: []string{testRedis.Addr}, KeyPrefix: prefix, Timeout: caddy.Duration(time.Second + time.Duration(i)*time.Millisecond)}
		provision(t, s)
		stores[i] = s
	}
	if stores[0].(*RedisStore).client == stores[1].(*RedisStore).client {
		t.Fatal("the two stores share a client")
	}
	const n = 20
	for _, tc := range []struct {
		name  string
		allow Allowance
	}{
		{"rpm", Allowance{RPM: n}},
		{"max_parallel", Allowance{MaxParallel: n}},
		{"budget_usd", Allowance{BudgetNanoUSD: 100 * n}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := admitAtOnce(t, stores, "two-"+tc.name, NewUserID(), 3*n,
				Admission{Allowance: tc.allow, PromptTokens: 1, MinOutput: 1, MaxOutput: 1, InputNanoUSD: 50, OutputNanoUSD: 50})
			if got != n {
				t.Errorf("%d of %d admitted through two clients, want %d", got, 3*n, n)
			}
		})
	}
}

// TestRedisSpendLayout pins the spend keys of RedisStore's doc comment:
// their names, types, fields and expiries, and the pruning of the window.
func TestRedisSpendLayout(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	sp := spender{t: t, s: s, name: "kim", id: NewUserID()}
	tag := s.KeyPrefix + "{u:kim}:"
	a := Admission{Allowance: Allowance{RPM: 10, MaxParallel: 2, BudgetTokens: 1000, Period: PeriodDay}, Lease: "L1", PromptTokens: 10, MaxOutput: 20}
	sp.admit(spendT0, a)

	win, lease, day := tag+"win:"+sp.id, tag+"lease:"+sp.id, tag+"spend:"+sp.id+":d2035-03-14"
	second := strconv.FormatInt(spendT0.Unix(), 10)
	for key, want := range map[string]map[string]string{
		win:   {"r:" + second: "1", "t:" + second: "30", "R": "1", "T": "30", "o": second, "n": second},
		lease: {"L1": strconv.FormatInt(spendT0.Add(LeaseTTL).UnixMilli(), 10)},
		day:   {"requests": "1", "tokens": "30", "nano_usd": "0"},
	} {
		got, err := rdb.HGetAll(ctx, key).Result()
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("HGETALL %s = %v, %v; want %v", key, got, err, want)
		}
	}
	for key, want := range map[string]time.Duration{win: spendWindowTTL, lease: 2 * LeaseTTL} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= want-time.Minute || ttl > want {
			t.Errorf("PTTL %s = %v, want about %v", key, ttl, want)
		}
	}
	end := time.Date(2035, 3, 15, 0, 0, 0, 0, time.UTC).Add(spendKeep)
	if got := rdb.ExpireTime(ctx, day).Val(); got != time.Duration(end.Unix())*time.Second {
		t.Errorf("EXPIRETIME %s = %v, want %v", day, got, end)
	}
	a.Period, a.Lease = PeriodTotal, "L2"
	sp.admit(spendT0.Add(61*time.Second), a)
	later := strconv.FormatInt(spendT0.Add(61*time.Second).Unix(), 10)
	if got := rdb.HGetAll(ctx, win).Val(); fmt.Sprint(got) != fmt.Sprint(map[string]string{
		"r:" + later: "1", "t:" + later: "30", "R": "1", "T": "30", "o": later, "n": later}) {
		t.Errorf("window after a minute: %v, want the new second's only", got)
	}
	total := tag + "spend:" + sp.id + ":total"
	if ttl := rdb.TTL(ctx, total).Val(); ttl != -1 {
		t.Errorf("TTL %s = %v, want none", total, ttl)
	}
	if n := rdb.HLen(ctx, lease).Val(); n != 2 {
		t.Errorf("%d leases, want 2", n)
	}
	sp.settle(Settlement{Admitted: spendT0, Period: PeriodDay, Lease: "L1", Reserved: Amounts{1, 30, 0}, Used: Amounts{1, 30, 0}})
	if got := rdb.HKeys(ctx, lease).Val(); len(got) != 1 || got[0] != "L2" {
		t.Errorf("leases after settling L1: %v", got)
	}
	if n := rdb.Exists(ctx, tag+"spend:"+sp.id+":m2035-03").Val(); n != 0 {
		t.Error("a settlement without a difference wrote its period")
	}
}

// TestRedisSpendCorrupt checks that a spend key Redis cannot read as the
// ledger's fails the call with ErrUnavailable, not a wrong answer.
func TestRedisSpendCorrupt(t *testing.T) {
	ctx := context.Background()
	s := newRedisStore(t)
	sp := spender{t: t, s: s, name: "kim", id: NewUserID()}
	rdb := redis.NewClient(&redis.Options{Addr: testRedis.Addr})
	defer rdb.Close()
	rdb.Set(ctx, s.keys.spendWindow(sp.name, sp.id), "x", 0)
	a := Admission{User: sp.name, UserID: sp.id, Allowance: Allowance{RPM: 1}, Now: spendT0}
	if _, err := s.Admit(ctx, a); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Admit on a window of the wrong type: %v, want ErrUnavailable", err)
	}
	if _, err := s.Spending(ctx, SpendQuery{User: sp.name, UserID: sp.id, Now: spendT0}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Spending on a window of the wrong type: %v, want ErrUnavailable", err)
	}
	rdb.Del(ctx, s.keys.spendWindow(sp.name, sp.id))
	rdb.HSet(ctx, s.keys.spendPeriod(sp.name, sp.id, "m2035-03"), "requests", "many")
	if _, err := s.Admit(ctx, a); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Admit on a period that holds no number: %v, want ErrUnavailable", err)
	}
	st := Settlement{User: sp.name, UserID: sp.id, Admitted: spendT0, Lease: "L", Reserved: Amounts{1, 10, 0}}
	rdb.HSet(ctx, s.keys.spendLeases(sp.name, sp.id), "L", spendT0.Add(LeaseTTL).UnixMilli())
	if err := s.Settle(ctx, st); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Settle on a period that holds no number: %v, want ErrUnavailable", err)
	}
	// The scripts read before they write: the failures changed nothing.
	if n := rdb.Exists(ctx, s.keys.spendWindow(sp.name, sp.id)).Val(); n != 0 {
		t.Error("the failed admission wrote the window")
	}
	if n := rdb.HLen(ctx, s.keys.spendLeases(sp.name, sp.id)).Val(); n != 1 {
		t.Error("the failed settlement let the lease go")
	}
}

// TestRedisSettleAfterScriptsLost: settlements sent together after the
// server lost its scripts (a restart, a failover) are each applied once.
func TestRedisSettleAfterScriptsLost(t *testing.T) {
	s := newRedisStore(t)
	sp := newSpender(t, s, "lost")
	a := Admission{Allowance: Allowance{BudgetTokens: 1000, Period: PeriodDay}, PromptTokens: 10, MinOutput: 1, MaxOutput: 90}
	var batch []Settlement
	for range 3 {
		v := sp.admit(spendAt(0), a)
		batch = append(batch, Settlement{User: sp.name, UserID: sp.id, Admitted: spendAt(0), Period: PeriodDay,
			Reserved: v.Reserved, Used: Amounts{1, 30, 0}})
	}
	if err := s.client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(context.Background(), batch...); err != nil {
		t.Fatal(err)
	}
	if got := sp.spending(spendAt(0), PeriodDay).Spent; got != (Amounts{3, 90, 0}) {
		t.Fatalf("spent %+v, want 3 requests of 30 tokens", got)
	}
}
