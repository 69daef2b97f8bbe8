package keystore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// addUsageScript adds one user's part of a batch (see RedisStore's doc
// comment). It reads and checks everything before its first write, and its
// first write is the writer's sequence number: a Redis out of memory refuses
// that write, and then nothing has changed; once it is written, nothing
// after it can fail. A counter that would pass MaxUsageCount is set to it.
//
// KEYS[1] is the user's applied hash, KEYS[2] its ID set, KEYS[3..] one
// usage month hash each. ARGV: writer, seq, now (Unix seconds), how long to
// remember idle writers (seconds), the number of IDs and the IDs; then, for
// each month hash in KEYS order, its EXPIREAT time (0: none), the number n
// of its fields and n field/increment pairs.
var addUsageScript = redis.NewScript(`
local writer, seq, now, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local applied = string.match(redis.call('HGET', KEYS[1], writer) or '', '^%d+')
local last = tonumber(applied or '')
if last and last >= seq then
	-- A retry: keep the writer's entry fresh, so the pruning below never
	-- forgets a writer that is still retrying.
	redis.call('HSET', KEYS[1], writer, applied .. ' ' .. ARGV[3])
	return 0
end
local cap = 4611686018427387904
local plan = {}
local nids = tonumber(ARGV[5])
local a = 6 + nids
for i = 3, #KEYS do
	local expire, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
	a = a + 2
	local sets = {}
	for _ = 1, n do
		local field, inc = ARGV[a], tonumber(ARGV[a + 1])
		local cur = redis.call('HGET', KEYS[i], field)
		local v = 0
		if cur then
			v = tonumber(cur)
			if not v or string.find(cur, '[^0-9-]') then
				return redis.error_reply('usage field ' .. field .. ' of ' .. KEYS[i] .. ' holds ' .. cur)
			end
		end
		sets[#sets + 1] = {field, ARGV[a + 1], v + inc >= cap}
		a = a + 2
	end
	plan[#plan + 1] = {KEYS[i], expire, sets}
end
redis.call('HSET', KEYS[1], writer, ARGV[2] .. ' ' .. ARGV[3])
for i = 6, 5 + nids do
	redis.call('SADD', KEYS[2], ARGV[i])
end
for _, p in ipairs(plan) do
	for _, s in ipairs(p[3]) do
		if s[3] then
			redis.call('HSET', p[1], s[1], '4611686018427387904')
		else
			redis.call('HINCRBY', p[1], s[1], s[2])
		end
	end
	if p[2] > 0 then
		redis.call('EXPIREAT', p[1], p[2])
	else
		redis.call('PERSIST', p[1])
	end
end
if redis.call('HLEN', KEYS[1]) > 16 then
	local all = redis.call('HGETALL', KEYS[1])
	for j = 1, #all, 2 do
		local at = tonumber(string.match(all[j + 1], ' (%d+)$'))
		if not at or now - at > keep then
			redis.call('HDEL', KEYS[1], all[j])
		end
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
	{"cost_nano_usd", func(c *UsageCounts) *int64 { return &c.CostNanoUSD }},
}

// usageCounterByName indexes usageCounters by name, for parsing fields.
var usageCounterByName = func() map[string]func(*UsageCounts) *int64 {
	m := make(map[string]func(*UsageCounts) *int64, len(usageCounters))
	for _, c := range usageCounters {
		m[c.name] = c.of
	}
	return m
}()

// sumUsage adds up the rows of one key, dropping all-zero ones. Counts are
// clamped to [0, MaxUsageCount] so that no sum can overflow.
func sumUsage(rows []UsageRow) map[UsageKey]UsageCounts {
	sums := make(map[UsageKey]UsageCounts, len(rows))
	for _, r := range rows {
		if r.UsageCounts == (UsageCounts{}) {
			continue
		}
		c := sums[r.UsageKey]
		for _, ctr := range usageCounters {
			p := ctr.of(&c)
			*p = min(*p+min(max(*ctr.of(&r.UsageCounts), 0), MaxUsageCount), MaxUsageCount)
		}
		sums[r.UsageKey] = c
	}
	return sums
}

// usageScriptCall is one run of addUsageScript: one user's part of a batch.
type usageScriptCall struct {
	user string // the user whose rows it adds
	keys []string
	args []any
}

// monthOf returns the YYYY-MM of a YYYY-MM-DD date.
func monthOf(date string) string { return date[:7] }

// monthExpiry returns when a month's usage may go under retention: the
// first instant of the next month plus the retention; 0 for none.
func monthExpiry(month string, retention time.Duration) int64 {
	if retention <= 0 {
		return 0
	}
	start, err := time.Parse("2006-01", month)
	if err != nil {
		return 0
	}
	return start.AddDate(0, 1, 0).Add(retention).Unix()
}

// usageScriptCalls groups a batch by user name (one hash tag each).
func (s *RedisStore) usageScriptCalls(b UsageBatch, now time.Time) []usageScriptCall {
	type monthKey struct{ id, month string }
	byUser := make(map[string]map[monthKey][]any) // name -> month hash -> field, increment, ...
	for k, c := range sumUsage(b.Rows) {
		months := byUser[k.User]
		if months == nil {
			months = make(map[monthKey][]any)
			byUser[k.User] = months
		}
		mk := monthKey{k.UserID, monthOf(k.Date)}
		prefix := k.Date[8:10] + "|" + k.Model + "|"
		for _, ctr := range usageCounters {
			if n := *ctr.of(&c); n != 0 {
				months[mk] = append(months[mk], prefix+ctr.name, n)
			}
		}
	}
	calls := make([]usageScriptCall, 0, len(byUser))
	for _, name := range slices.Sorted(maps.Keys(byUser)) {
		months := byUser[name]
		order := slices.SortedFunc(maps.Keys(months), func(a, b monthKey) int {
			return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.month, b.month))
		})
		var ids []string
		for _, mk := range order {
			if !slices.Contains(ids, mk.id) {
				ids = append(ids, mk.id)
			}
		}
		keys := []string{s.keys.applied(name), s.keys.userIDs(name)}
		args := []any{b.Writer, strconv.FormatUint(b.Seq, 10), now.Unix(), int64(UsageBatchTTL / time.Second), len(ids)}
		for _, id := range ids {
			args = append(args, id)
		}
		for _, mk := range order {
			keys = append(keys, s.keys.usageMonth(name, mk.id, mk.month))
			fields := months[mk]
			args = append(args, monthExpiry(mk.month, b.Retention), len(fields)/2)
			args = append(args, fields...)
		}
		calls = append(calls, usageScriptCall{name, keys, args})
	}
	return calls
}

// AddUsage implements Store with one run of addUsageScript per user, sent
// in one pipeline (split by shard on a Cluster).
func (s *RedisStore) AddUsage(ctx context.Context, b UsageBatch) error {
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	if err := b.validate(); err != nil {
		return err
	}
	calls := s.usageScriptCalls(b, time.Now())
	if len(calls) == 0 {
		return nil
	}
	newOwners := s.ownersSeen.unseen(b.Rows)
	ctx, cancel := s.call(ctx)
	defer cancel()
	// EVAL rather than EVALSHA: a pipeline cannot fall back on NOSCRIPT,
	// and Redis caches the compiled script by its digest anyway.
	cmds := make([]*redis.Cmd, len(calls))
	var owners *redis.IntCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(newOwners) > 0 {
			owners = p.SAdd(ctx, s.keys.owners, newOwners...)
		}
		for i, c := range calls {
			cmds[i] = addUsageScript.Eval(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	if err == nil {
		s.ownersSeen.add(newOwners)
		return nil
	}
	if owners != nil && owners.Err() != nil {
		// The owners' index lives on one shard; a failure there holds
		// back no one's counts: the owners go again with the next batch.
		newOwners = nil
		if scriptsOK(cmds) {
			return nil
		}
	}
	var errs []error
	var failed []string // users whose part failed, when others' went through
	for i, c := range cmds {
		switch err := c.Err(); {
		case err == nil:
		case isCorruptUsage(err):
			// Retrying cannot help, and would hold back everyone's
			// counts: this user's part is dropped, loudly.
			s.logger.Error("usage of a user could not be added: their stored usage is corrupt; fix or delete the key named",
				zap.String("user", calls[i].keys[0]), zap.Error(err), zap.Any("increments", calls[i].args[5:]))
		default:
			errs = append(errs, err)
			failed = append(failed, calls[i].user)
		}
	}
	if len(errs) == 0 && !errors.Is(err, redis.Nil) && (owners == nil || owners.Err() == nil) {
		if _, ok := err.(redis.Error); !ok {
			errs = append(errs, err) // the pipeline itself failed
		}
	}
	if len(errs) == 0 {
		s.ownersSeen.add(newOwners)
		return nil
	}
	if len(failed) == len(errs) && len(failed) < len(calls) {
		// Only some users' scripts failed (their shard is down): the
		// others' rows are written, and only these need sending again.
		return &UsageUsersError{Users: failed, Err: unavailable(errors.Join(errs...))}
	}
	return unavailable(errors.Join(errs...))
}

// scriptsOK reports whether every usage script of a pipeline ran.
func scriptsOK(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c.Err() != nil && !errors.Is(c.Err(), redis.Nil) {
			return false
		}
	}
	return true
}

// isCorruptUsage reports whether a usage script failed on stored data it
// cannot add to (a counter that is not an integer, a key of another type),
// which no retry can mend.
func isCorruptUsage(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "usage field ") || strings.HasPrefix(msg, "WRONGTYPE")
}

// ownerCache remembers which usage owners ("<name>/<id>") this store has
// registered in the owners set, so that a flush adds only new ones: users
// are registered when created, and this catches the rest (a user created by
// an older release, say) at the cost of one SADD per user and process.
type ownerCache struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// maxOwnersCached bounds ownerCache; past it, the cache starts over (and
// re-registers, harmlessly, the owners it meets again).
const maxOwnersCached = 1 << 16

// unseen returns the owners of rows not registered yet.
func (c *ownerCache) unseen(rows []UsageRow) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []any
	for _, r := range rows {
		o := r.User + "/" + r.UserID
		if _, ok := c.seen[o]; !ok && !slices.Contains(out, any(o)) {
			out = append(out, o)
		}
	}
	return out
}

// add records owners as registered.
func (c *ownerCache) add(owners []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen)+len(owners) > maxOwnersCached {
		c.seen = make(map[string]struct{})
	}
	for _, o := range owners {
		c.seen[o.(string)] = struct{}{}
	}
}

// reportTimeout bounds a usage query: longer than a call on the request
// path, as a year of a team's usage is a lot of rows, but bounded still.
const reportTimeout = 10 * time.Second

// reportChunk is how many month hashes one round trip of a query reads, so
// that a large report neither holds Redis for long nor sits whole in a
// socket buffer.
const reportChunk = 128

// usageOwner is one user identity whose usage a query reads.
type usageOwner struct{ name, id string }

// owners lists the identities f selects: one, every ID a name has had, or
// every user ever created.
func (s *RedisStore) owners(ctx context.Context, f UsageFilter) ([]usageOwner, error) {
	switch {
	case f.User != "" && f.UserID != "":
		return []usageOwner{{f.User, f.UserID}}, nil
	case f.User != "":
		ids, err := s.client.SMembers(ctx, s.keys.userIDs(f.User)).Result()
		if err != nil {
			return nil, redisErr(err)
		}
		owners := make([]usageOwner, len(ids))
		for i, id := range ids {
			owners[i] = usageOwner{f.User, id}
		}
		return owners, nil
	}
	members, err := s.client.SMembers(ctx, s.keys.owners).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	owners := make([]usageOwner, 0, len(members))
	for _, m := range members {
		if name, id, ok := strings.Cut(m, "/"); ok && (f.UserID == "" || id == f.UserID) {
			owners = append(owners, usageOwner{name, id})
		}
	}
	return owners, nil
}

// QueryUsage implements Store: the month hashes of the selected users only,
// read reportChunk at a time.
func (s *RedisStore) QueryUsage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	if err := s.ensureLayout(ctx); err != nil {
		return nil, err
	}
	days, err := f.days()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	owners, err := s.owners(ctx, f)
	if err != nil {
		return nil, err
	}
	var months []string
	for _, d := range days {
		if m := monthOf(d); len(months) == 0 || months[len(months)-1] != m {
			months = append(months, m)
		}
	}
	type read struct {
		owner usageOwner
		month string
	}
	reads := make([]read, 0, len(owners)*len(months))
	for _, o := range owners {
		for _, m := range months {
			reads = append(reads, read{o, m})
		}
	}
	rows := []UsageRow{}
	for chunk := range slices.Chunk(reads, reportChunk) {
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range chunk {
				cmds[i] = p.HGetAll(ctx, s.keys.usageMonth(r.owner.name, r.owner.id, r.month))
			}
			return nil
		})
		if err != nil {
			return nil, redisErr(err)
		}
		for i, r := range chunk {
			rows, err = appendMonthRows(rows, r.owner, r.month, cmds[i].Val(), f)
			if err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(rows, compareUsageRows)
	return rows, nil
}

// compareUsageRows orders rows by date, user, user ID and model. It runs
// once per comparison of a sort of maybe hundreds of thousands of rows, so
// it stops at the first difference.
func compareUsageRows(a, b UsageRow) int {
	if c := strings.Compare(a.Date, b.Date); c != 0 {
		return c
	}
	if c := strings.Compare(a.User, b.User); c != 0 {
		return c
	}
	if c := strings.Compare(a.UserID, b.UserID); c != 0 {
		return c
	}
	return strings.Compare(a.Model, b.Model)
}

// appendMonthRows appends the rows of one month hash that f selects. A
// field is "<DD>|<model>|<counter>"; models may contain '|', so the model
// is what lies between the first three bytes and the last '|'. Fields are
// grouped by their "<DD>|<model>" part, which indexes the rows without
// building a key per field.
func appendMonthRows(rows []UsageRow, o usageOwner, month string, fields map[string]string, f UsageFilter) ([]UsageRow, error) {
	index := make(map[string]int, len(fields)/4+1) // "<DD>|<model>" -> row
	for field, val := range fields {
		last := strings.LastIndexByte(field, '|')
		if len(field) < 4 || field[2] != '|' || last < 3 {
			return nil, unavailable(fmt.Errorf("malformed usage field %q in %s", field, month))
		}
		counter, ok := usageCounterByName[field[last+1:]]
		if !ok {
			continue // a counter this build does not know
		}
		i, seen := index[field[:last]]
		if !seen {
			key := UsageKey{User: o.name, UserID: o.id, Model: field[3:last], Date: month + "-" + field[:2]}
			if !f.Matches(key) {
				index[field[:last]] = -1
				continue
			}
			i = len(rows)
			index[field[:last]] = i
			rows = append(rows, UsageRow{UsageKey: key})
		}
		if i < 0 {
			continue
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return nil, unavailable(fmt.Errorf("usage field %q in %s: %v", field, month, err))
		}
		*counter(&rows[i].UsageCounts) += n
	}
	return rows, nil
}
