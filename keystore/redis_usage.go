package keystore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// addUsageScript adds one batch atomically (see RedisStore's doc comment).
// Its first write is the SET, so a Redis out of memory refuses the script
// before it changes anything.
//
// KEYS[1] is the batch marker, KEYS[2..] one usage hash per day. ARGV[1] is
// the marker's TTL in seconds; then, for each hash in KEYS order, the number
// n of its fields followed by n field/increment pairs.
var addUsageScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
	return 0
end
local a = 2
for i = 2, #KEYS do
	local n = tonumber(ARGV[a])
	a = a + 1
	for _ = 1, n do
		redis.call('HINCRBY', KEYS[i], ARGV[a], ARGV[a + 1])
		a = a + 2
	end
end
return 1
`)

// usageCounter names one counter of UsageCounts in Redis hash fields.
type usageCounter struct {
	name string // the counter's JSON name
	of   func(*UsageCounts) *int64
}

// usageCounters lists every counter of UsageCounts under its JSON name.
var usageCounters = [...]usageCounter{
	{"requests", func(c *UsageCounts) *int64 { return &c.Requests }},
	{"prompt_tokens", func(c *UsageCounts) *int64 { return &c.PromptTokens }},
	{"completion_tokens", func(c *UsageCounts) *int64 { return &c.CompletionTokens }},
	{"total_tokens", func(c *UsageCounts) *int64 { return &c.TotalTokens }},
	{"cached_tokens", func(c *UsageCounts) *int64 { return &c.CachedTokens }},
	{"reasoning_tokens", func(c *UsageCounts) *int64 { return &c.ReasoningTokens }},
	{"estimated_requests", func(c *UsageCounts) *int64 { return &c.EstimatedRequests }},
}

// usageCounterByName indexes usageCounters by name, for parsing fields.
var usageCounterByName = func() map[string]func(*UsageCounts) *int64 {
	m := make(map[string]func(*UsageCounts) *int64, len(usageCounters))
	for _, c := range usageCounters {
		m[c.name] = c.of
	}
	return m
}()

// AddUsage implements Store with one run of addUsageScript (EVALSHA, or EVAL
// when Redis does not have the script cached).
func (s *RedisStore) AddUsage(ctx context.Context, batchID string, rows []UsageRow) error {
	if err := validUsageBatch(batchID, rows); err != nil {
		return err
	}

	// Sum repeated keys first: fewer HINCRBYs inside the script, which
	// blocks Redis while it runs.
	sums := make(map[UsageKey]UsageCounts, len(rows))
	for _, r := range rows {
		if r.UsageCounts == (UsageCounts{}) {
			continue
		}
		c := sums[r.UsageKey]
		c.Add(r.UsageCounts)
		sums[r.UsageKey] = c
	}
	byDay := make(map[string][]any) // date -> field, increment, field, increment...
	for k, c := range sums {
		prefix := k.User + "|" + k.Model + "|"
		for _, ctr := range usageCounters {
			if n := *ctr.of(&c); n != 0 {
				byDay[k.Date] = append(byDay[k.Date], prefix+ctr.name, n)
			}
		}
	}
	if len(byDay) == 0 {
		return nil
	}

	days := slices.Sorted(maps.Keys(byDay))
	keys := make([]string, 0, len(days)+1)
	keys = append(keys, s.keys.usageBatch+batchID)
	args := []any{int64(UsageBatchTTL / time.Second)}
	for _, d := range days {
		keys = append(keys, s.keys.usage+d)
		args = append(args, len(byDay[d])/2)
		args = append(args, byDay[d]...)
	}

	ctx, cancel := s.call(ctx)
	defer cancel()
	return redisErr(addUsageScript.Run(ctx, s.client, keys, args...).Err())
}

// QueryUsage implements Store with one pipeline of an HGETALL per day.
func (s *RedisStore) QueryUsage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	days, err := f.days()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(days))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range days {
			cmds[i] = p.HGetAll(ctx, s.keys.usage+d)
		}
		return nil
	})
	if err != nil {
		return nil, redisErr(err)
	}
	rows := []UsageRow{}
	for i, d := range days {
		dayRows, err := parseUsageHash(d, cmds[i].Val(), f)
		if err != nil {
			return nil, err
		}
		rows = append(rows, dayRows...)
	}
	return rows, nil
}

// parseUsageHash turns one day's hash into its rows that match f, sorted by
// user and model.
func parseUsageHash(date string, fields map[string]string, f UsageFilter) ([]UsageRow, error) {
	counts := make(map[UsageKey]*UsageCounts)
	for field, val := range fields {
		first, last := strings.IndexByte(field, '|'), strings.LastIndexByte(field, '|')
		if first < 0 || first == last {
			return nil, unavailable(fmt.Errorf("malformed usage field %q on %s", field, date))
		}
		key := UsageKey{User: field[:first], Model: field[first+1 : last], Date: date}
		counter, ok := usageCounterByName[field[last+1:]]
		if !ok || !f.matches(key) {
			continue // not selected, or a counter this build does not know
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return nil, unavailable(fmt.Errorf("usage field %q on %s: %v", field, date, err))
		}
		c := counts[key]
		if c == nil {
			c = new(UsageCounts)
			counts[key] = c
		}
		*counter(c) += n
	}
	rows := make([]UsageRow, 0, len(counts))
	for k, c := range counts {
		rows = append(rows, UsageRow{UsageKey: k, UsageCounts: *c})
	}
	slices.SortFunc(rows, func(a, b UsageRow) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
	return rows, nil
}
