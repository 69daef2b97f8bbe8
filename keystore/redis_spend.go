package keystore

// redis_spend.go: the Redis store's spend ledger. Each call is one Lua
// script over one user ID's keys, which share the user's hash tag (so it
// runs on a Cluster too), and Redis runs scripts one at a time: instances
// sharing the store admit as one ledger would. The scripts follow
// spend_ledger.go rule for rule, and the conformance suite
// (suite_spend_test.go) holds both to the same answers.
//
// Time is the caller's (Admission.Now, SpendQuery.Now), in milliseconds,
// never Redis' own: the window and periods are those of the request, as in
// the file store. Expiries, which only reclaim memory, follow Redis' clock.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// spendWindowTTL is how long a user's window outlives its last write: by
// then every second in it has left the window.
const spendWindowTTL = 2 * WindowLength

// The keys of one user ID's spending (see RedisStore):
//
//	<tag>win:<id>            hash "r:<unix second>" -> requests, "t:<unix second>" -> tokens,
//	                         and their sums "R", "T", the oldest second "o", the newest "n"
//	<tag>lease:<id>          hash lease -> when it lapses (unix ms)
//	<tag>spend:<id>:<period> hash requests, tokens, nano_usd (period from Period.Span)
func (k redisKeys) spendWindow(name, id string) string { return k.userTag(name) + "win:" + id }
func (k redisKeys) spendLeases(name, id string) string { return k.userTag(name) + "lease:" + id }
func (k redisKeys) spendPeriod(name, id, period string) string {
	return k.userTag(name) + "spend:" + id + ":" + period
}

// spendLua is the start of every spend script: the ledger's constants and
// the helpers they share. Lua numbers are doubles, exact for integers up to
// 2^53: limits stop at MaxLimit (2^50), and outputRoom and reservation keep
// bounds and prices within it (spend_ledger.go).
var spendLua = fmt.Sprintf(`
local WINDOW, WINDOW_TTL, LEASE_TTL = %d, %d, %d
local MAX_LIMIT, MAX_NANO_USD = %d, %d

-- int formats an integral number for a command: tostring would round
-- past 14 digits.
local function int(n)
	if n == 0 then return '0' end
	return string.format('%%.0f', n)
end

-- count reads a stored count (nil or false: none, 0). Anything else than
-- an integer fails the script before its first write, since HINCRBY would
-- fail on it half way through.
local function count(v, key, field)
	if not v then return 0 end
	if not string.find(v, '^%%-?%%d+$') then
		error('spend ledger: ' .. key .. ' field ' .. field .. ' holds ' .. v .. ', not a count')
	end
	return tonumber(v)
end

-- hdel deletes fields in chunks, as unpack is bounded by Lua's stack.
local function hdel(key, fields)
	for i = 1, #fields, 1000 do
		redis.call('HDEL', key, unpack(fields, i, math.min(i + 999, #fields)))
	end
end

-- The window hash keeps a field per second ("r:<s>" requests, "t:<s>"
-- tokens) and, so that an admission reads a few fields rather than the
-- whole minute, their sums ("R", "T"), the oldest second it may still
-- hold ("o") and the newest second with an admission ("n").
--
-- window returns the window as of now (ms), after dropping the seconds
-- that left it (subtracted from the sums): a table {R, T, o, n, cur, rc,
-- tc} where rc and tc are the current second's counts. Every count it
-- returns was checked to be an integer, before any write.
local function window(key, now)
	local cur = math.floor(now / 1000)
	local cutoff = cur - WINDOW
	local rc, tc = 'r:' .. int(cur), 't:' .. int(cur)
	local h = redis.call('HMGET', key, 'R', 'T', 'o', 'n', rc, tc)
	local w = {R = count(h[1], key, 'R'), T = count(h[2], key, 'T'),
		o = tonumber(h[3]), n = tonumber(h[4]), cur = cur,
		rc = count(h[5], key, rc), tc = count(h[6], key, tc)}
	if not w.o or not w.n or w.n <= cutoff then
		-- Empty, or everything in it has left.
		if h[1] or h[3] then redis.call('DEL', key) end
		return {R = 0, T = 0, cur = cur, rc = 0, tc = 0}
	end
	if w.o <= cutoff then
		-- The seconds present lie in [o, n], and an admission at n
		-- pruned up to n-WINDOW: this is at most a minute of seconds.
		local fields = {}
		for sec = w.o, cutoff do
			fields[#fields + 1] = 'r:' .. int(sec)
			fields[#fields + 1] = 't:' .. int(sec)
		end
		local v = redis.call('HMGET', key, unpack(fields))
		for i = 1, #fields, 2 do
			w.R = w.R - count(v[i], key, fields[i])
			w.T = w.T - count(v[i + 1], key, fields[i + 1])
		end
		hdel(key, fields)
		w.o = cutoff + 1
		redis.call('HSET', key, 'R', int(w.R), 'T', int(w.T), 'o', int(w.o))
	end
	return w
end

-- leavesAt is how long until the second s leaves the window (0 for nil).
local function leavesAt(s, now)
	if not s then return 0 end
	return math.max((s + WINDOW) * 1000 - now, 0)
end

-- resets is how long until the window holds no requests, and no tokens:
-- until its newest second with an admission leaves.
local function resets(w, now)
	local r, t = 0, 0
	if w.R > 0 then r = leavesAt(w.n, now) end
	if w.T > 0 then t = leavesAt(w.n, now) end
	return r, t
end

-- leases drops the lapsed leases and returns how many are left.
local function leases(key, now)
	local all = redis.call('HGETALL', key)
	local n, lapsed = 0, {}
	for i = 1, #all, 2 do
		if count(all[i + 1], key, all[i]) <= now then
			lapsed[#lapsed + 1] = all[i]
		else
			n = n + 1
		end
	end
	hdel(key, lapsed)
	return n
end
`, windowSeconds, spendWindowTTL.Milliseconds(), LeaseTTL.Milliseconds(), MaxLimit, maxReservedNanoUSD)

// admitScript is spendLedger.admit: the checks in the same order, and the
// reservation only when all pass. It returns the verdict as {denial,
// retry after (ms), output, reserved requests, tokens, nano-USD, window
// requests, tokens, requests reset (ms), tokens reset (ms), spent requests,
// tokens, nano-USD}.
//
// KEYS: the window, leases and period hashes. ARGV: now (ms), lease,
// max_parallel, rpm, tpm, budget requests, tokens and nano-USD, the
// period's end (ms, 0 for none), prompt tokens, min and max output, input
// and output prices, the period hash's EXPIREAT (0 for none).
var admitScript = redis.NewScript(spendLua + `
local now, lease = tonumber(ARGV[1]), ARGV[2]
local maxPar, rpm, tpm = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local bReq, bTok, bUSD = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local periodEnd = tonumber(ARGV[9])
local prompt, minOut, maxOut = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local inPrice, outPrice = tonumber(ARGV[13]), tonumber(ARGV[14])
local expireAt = tonumber(ARGV[15])

local w = window(KEYS[1], now)
local wReq, wTok = w.R, w.T
local wReqReset, wTokReset = resets(w, now)
local spent = redis.call('HMGET', KEYS[3], 'requests', 'tokens', 'nano_usd')
local sReq = count(spent[1], KEYS[3], 'requests')
local sTok = count(spent[2], KEYS[3], 'tokens')
local sUSD = count(spent[3], KEYS[3], 'nano_usd')
local untilReset = 0
if periodEnd > 0 then untilReset = periodEnd - now end

local function deny(denial, after)
	return {denial, after, -1, 0, 0, 0, wReq, wTok, wReqReset, wTokReset, sReq, sTok, sUSD}
end

-- waitFor: how long until the window, its oldest seconds leaving, holds
-- at most limit-need of column col ('r:' requests, 't:' tokens); at least
-- 1s. Only a denial reads the window second by second.
local function waitFor(col, need, limit)
	if not w.o then return WINDOW * 1000 end
	local fields = {}
	for sec = w.o, w.cur do fields[#fields + 1] = col .. int(sec) end
	local v = redis.call('HMGET', KEYS[1], unpack(fields))
	local sum = (col == 'r:') and wReq or wTok
	for i = 1, #fields do
		sum = sum - (tonumber(v[i]) or 0)
		if v[i] and sum + need <= limit then
			return math.max(leavesAt(w.o + i - 1, now), 1000)
		end
	end
	return WINDOW * 1000
end

-- outputRoom: the output bound (-1: none) or the denial.
local counts = tpm ~= 0 or bTok ~= 0 or bUSD ~= 0
local function outputRoom()
	if not counts then return -1 end
	local out = maxOut
	if out < 0 or out > MAX_LIMIT then out = math.huge end
	if tpm > 0 then
		if prompt + minOut > tpm then return 0, 'tpm_too_large' end
		local room = tpm - wTok - prompt
		if room < minOut then return 0, 'tpm' end
		out = math.min(out, room)
	end
	if bTok > 0 then
		local room = bTok - sTok - prompt
		if room < minOut then return 0, 'budget_tokens' end
		out = math.min(out, room)
	end
	if bUSD > 0 then
		local left = (bUSD - sUSD) - math.ceil(prompt * inPrice)
		local room = math.huge
		if outPrice > 0 and left >= 0 then
			room = math.min(math.floor(left / outPrice), MAX_LIMIT)
		end
		if left < 0 or room < minOut then return 0, 'budget_usd' end
		out = math.min(out, room)
	end
	if out == math.huge then return -1 end
	return out
end

if maxPar > 0 and leases(KEYS[2], now) >= maxPar then
	return deny('max_parallel', 1000)
end
if rpm > 0 and wReq + 1 > rpm then
	return deny('rpm', waitFor('r:', 1, rpm))
end
if bReq > 0 and sReq + 1 > bReq then
	return deny('budget_requests', untilReset)
end
local out, denial = outputRoom()
if denial == 'tpm' then
	return deny(denial, waitFor('t:', prompt + minOut, tpm))
elseif denial == 'tpm_too_large' then
	return deny(denial, 0)
elseif denial then
	return deny(denial, untilReset)
end

local rTok, rUSD = 0, 0
if counts then
	local o = math.max(out, 0)
	rTok = prompt + o
	rUSD = math.min(math.ceil(prompt * inPrice + o * outPrice), MAX_NANO_USD)
end
local sec = int(w.cur)
redis.call('HINCRBY', KEYS[1], 'r:' .. sec, 1)
redis.call('HINCRBY', KEYS[1], 't:' .. sec, int(rTok))
wReq, wTok = wReq + 1, wTok + rTok
w.R, w.T, w.n = wReq, wTok, w.cur
redis.call('HSET', KEYS[1], 'R', int(wReq), 'T', int(wTok), 'n', sec, 'o', int(w.o or w.cur))
redis.call('PEXPIRE', KEYS[1], WINDOW_TTL)
wReqReset, wTokReset = resets(w, now)
sReq = redis.call('HINCRBY', KEYS[3], 'requests', 1)
sTok = redis.call('HINCRBY', KEYS[3], 'tokens', int(rTok))
sUSD = redis.call('HINCRBY', KEYS[3], 'nano_usd', int(rUSD))
if expireAt > 0 then redis.call('EXPIREAT', KEYS[3], expireAt) end
if maxPar > 0 and lease ~= '' then
	redis.call('HSET', KEYS[2], lease, int(now + LEASE_TTL))
	redis.call('PEXPIRE', KEYS[2], 2 * LEASE_TTL)
end
return {'', 0, out, 1, rTok, rUSD, wReq, wTok, wReqReset, wTokReset, sReq, sTok, sUSD}
`)

// settleScript is spendLedger.settle: the lease goes, the admission's
// second takes the difference in tokens if it is still in the window, and
// the period each difference, none going below 0. It has no clock (a
// Settlement has none), so it prunes nothing: it changes fields that exist
// and adds none to the window. It reads every count it adds to before its
// first write, so that a corrupt one changes nothing.
//
// KEYS: the window, leases and period hashes. ARGV: the admission's unix
// second, lease, the differences (used - reserved) in requests, tokens and
// nano-USD, the period hash's EXPIREAT (0 for none).
var settleScript = redis.NewScript(spendLua + `
local r, t = 'r:' .. ARGV[1], 't:' .. ARGV[1]
local fields, deltas = {'requests', 'tokens', 'nano_usd'}, {ARGV[3], ARGV[4], ARGV[5]}
local bucket = redis.call('HMGET', KEYS[1], r, t, 'T')
local bucketTok, sumTok = 0, 0
if bucket[1] then
	bucketTok, sumTok = count(bucket[2], KEYS[1], t), count(bucket[3], KEYS[1], 'T')
end
local spent = redis.call('HMGET', KEYS[3], unpack(fields))
for i, field in ipairs(fields) do count(spent[i], KEYS[3], field) end

-- add adds delta to a count, which stays at 0 or above; true if it wrote.
local function add(key, field, delta)
	if delta == '0' then return false end
	if redis.call('HINCRBY', key, field, delta) < 0 then
		redis.call('HSET', key, field, 0)
	end
	return true
end
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[2], ARGV[2]) end
if bucket[1] and ARGV[4] ~= '0' then
	-- The second takes the difference, down to 0 at most, and the sum
	-- as much.
	local newTok = math.max(bucketTok + tonumber(ARGV[4]), 0)
	redis.call('HSET', KEYS[1], t, int(newTok), 'T', int(math.max(sumTok + newTok - bucketTok, 0)))
	redis.call('PEXPIRE', KEYS[1], WINDOW_TTL)
end
local wrote = false
for i, field in ipairs(fields) do
	wrote = add(KEYS[3], field, deltas[i]) or wrote
end
if wrote and tonumber(ARGV[6]) > 0 then
	redis.call('EXPIREAT', KEYS[3], ARGV[6])
end
return 1
`)

// renewScript is spendLedger.renew: a lease not lapsed at now lapses
// LeaseTTL later; a lapsed one goes with the others.
//
// KEYS: the leases hash. ARGV: now (ms), lease.
var renewScript = redis.NewScript(spendLua + `
local now = tonumber(ARGV[1])
leases(KEYS[1], now)
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
	redis.call('HSET', KEYS[1], ARGV[2], int(now + LEASE_TTL))
	redis.call('PEXPIRE', KEYS[1], 2 * LEASE_TTL)
end
return 1
`)

// spendingScript is spendLedger.spending. It returns {window requests,
// tokens, requests reset (ms), tokens reset (ms), in flight, spent
// requests, tokens, nano-USD}, the last three as stored (strings, or nil).
//
// KEYS: the window, leases and period hashes. ARGV: now (ms).
var spendingScript = redis.NewScript(spendLua + `
local now = tonumber(ARGV[1])
local w = window(KEYS[1], now)
local reqReset, tokReset = resets(w, now)
local req, tok = w.R, w.T
local spent = redis.call('HMGET', KEYS[3], 'requests', 'tokens', 'nano_usd')
return {req, tok, reqReset, tokReset, leases(KEYS[2], now), spent[1], spent[2], spent[3]}
`)

// spendKeys are the KEYS of the scripts but renewScript.
func (s *RedisStore) spendKeys(name, id, period string) []string {
	return []string{s.keys.spendWindow(name, id), s.keys.spendLeases(name, id), s.keys.spendPeriod(name, id, period)}
}

// periodTimes returns a period's end in unix ms (0 for none) and when its
// hash expires, spendKeep later, in unix seconds (0 for never), as the
// scripts take them.
func periodTimes(end time.Time) (endMs, expireAt int64) {
	if end.IsZero() {
		return 0, 0
	}
	return end.UnixMilli(), end.Add(spendKeep).Unix()
}

// formatPrice writes a price so that Lua's tonumber reads the same double.
func formatPrice(p float64) string { return strconv.FormatFloat(p, 'g', -1, 64) }

// errSpendReply is a script's reply of the wrong shape.
var errSpendReply = errors.New("spend ledger: malformed reply from Redis")

// spendReply reads a script's reply: integers, or integers as stored
// (strings; nil for none).
type spendReply []any

// int returns element i as an integer, 0 for nil.
func (r spendReply) int(i int) (int64, error) {
	if i >= len(r) {
		return 0, errSpendReply
	}
	switch v := r[i].(type) {
	case int64:
		return v, nil
	case nil:
		return 0, nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %q", errSpendReply, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%w: %T", errSpendReply, r[i])
}

// ints reads elements from, from+1, ... into dst, stopping at the first
// malformed one.
func (r spendReply) ints(from int, dst ...*int64) error {
	for i, d := range dst {
		n, err := r.int(from + i)
		if err != nil {
			return err
		}
		*d = n
	}
	return nil
}

// validDenial reports whether d is one of the denials.
func validDenial(d Denial) bool {
	switch d {
	case DeniedRequests, DeniedTokens, DeniedTooLarge, DeniedParallel,
		DeniedBudgetRequests, DeniedBudgetTokens, DeniedBudgetUSD:
		return true
	}
	return false
}

// Admit implements Store with admitScript.
func (s *RedisStore) Admit(ctx context.Context, a Admission) (Verdict, error) {
	period, end := a.BudgetPeriod().Span(a.Now)
	endMs, expireAt := periodTimes(end)
	ctx, cancel := s.call(ctx)
	defer cancel()
	raw, err := admitScript.Run(ctx, s.client, s.spendKeys(a.User, a.UserID, period),
		a.Now.UnixMilli(), a.Lease, a.MaxParallel, a.RPM, a.TPM,
		a.BudgetRequests, a.BudgetTokens, a.BudgetNanoUSD, endMs,
		a.PromptTokens, a.MinOutput, a.MaxOutput,
		formatPrice(a.InputNanoUSD), formatPrice(a.OutputNanoUSD), expireAt).Slice()
	if err != nil {
		return Verdict{}, redisErr(err)
	}
	r := spendReply(raw)
	var denial string
	if len(r) > 0 {
		denial, _ = r[0].(string)
	}
	if len(r) == 0 || denial != "" && !validDenial(Denial(denial)) {
		return Verdict{}, unavailable(errSpendReply)
	}
	v := Verdict{Denied: Denial(denial)}
	var after, reqReset, tokReset int64
	err = r.ints(1, &after, &v.Output,
		&v.Reserved.Requests, &v.Reserved.Tokens, &v.Reserved.NanoUSD,
		&v.Window.Requests, &v.Window.Tokens, &reqReset, &tokReset,
		&v.Spent.Requests, &v.Spent.Tokens, &v.Spent.NanoUSD)
	if err != nil {
		return Verdict{}, unavailable(err)
	}
	v.RetryAfter = time.Duration(after) * time.Millisecond
	v.Window.RequestsReset = time.Duration(reqReset) * time.Millisecond
	v.Window.TokensReset = time.Duration(tokReset) * time.Millisecond
	return v, nil
}

// Settle implements Store with settleScript, one call per settlement,
// several pipelined in one round trip (per node, on a Cluster).
func (s *RedisStore) Settle(ctx context.Context, settlements ...Settlement) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	if len(settlements) == 1 {
		keys, args := s.settleCall(settlements[0])
		return redisErr(settleScript.Run(ctx, s.client, keys, args...).Err())
	}
	todo := settlements
	for attempt := 0; ; attempt++ {
		cmds, _ := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, st := range todo {
				keys, args := s.settleCall(st)
				settleScript.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		// A server that lost its scripts (a restart, a failover) refuses
		// a call before running it: those, and only those, go again
		// once the script is loaded.
		var again []Settlement
		for i, c := range cmds {
			switch err := c.Err(); {
			case err == nil:
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, todo[i])
			default:
				return redisErr(err)
			}
		}
		if len(cmds) < len(todo) {
			return unavailable(errSpendReply)
		}
		if len(again) == 0 {
			return nil
		}
		if err := settleScript.Load(ctx, s.client).Err(); err != nil {
			return redisErr(err)
		}
		todo = again
	}
}

// settleCall is settleScript's KEYS and ARGV for st.
func (s *RedisStore) settleCall(st Settlement) ([]string, []any) {
	if st.Period == "" {
		st.Period = PeriodMonth
	}
	period, end := st.Period.Span(st.Admitted)
	_, expireAt := periodTimes(end)
	return s.spendKeys(st.User, st.UserID, period), []any{
		st.Admitted.Unix(), st.Lease,
		st.Used.Requests - st.Reserved.Requests, st.Used.Tokens - st.Reserved.Tokens,
		st.Used.NanoUSD - st.Reserved.NanoUSD, expireAt,
	}
}

// RenewLease implements Store with renewScript.
func (s *RedisStore) RenewLease(ctx context.Context, user, userID, lease string, now time.Time) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := renewScript.Run(ctx, s.client, []string{s.keys.spendLeases(user, userID)}, now.UnixMilli(), lease).Err()
	return redisErr(err)
}

// Spending implements Store with spendingScript.
func (s *RedisStore) Spending(ctx context.Context, q SpendQuery) (Spending, error) {
	if q.Period == "" {
		q.Period = PeriodMonth
	}
	period, _ := q.Period.Span(q.Now)
	ctx, cancel := s.call(ctx)
	defer cancel()
	raw, err := spendingScript.Run(ctx, s.client, s.spendKeys(q.User, q.UserID, period), q.Now.UnixMilli()).Slice()
	if err != nil {
		return Spending{}, redisErr(err)
	}
	var sp Spending
	var reqReset, tokReset int64
	err = spendReply(raw).ints(0, &sp.Window.Requests, &sp.Window.Tokens, &reqReset, &tokReset,
		&sp.InFlight, &sp.Spent.Requests, &sp.Spent.Tokens, &sp.Spent.NanoUSD)
	if err != nil {
		return Spending{}, unavailable(err)
	}
	sp.Window.RequestsReset = time.Duration(reqReset) * time.Millisecond
	sp.Window.TokensReset = time.Duration(tokReset) * time.Millisecond
	return sp, nil
}
