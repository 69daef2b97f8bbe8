package usage

import "sync"

// OtherModel is the model usage is counted under once the bound on
// distinct models is reached (see ModelBound).
const OtherModel = "(other)"

// MaxModelsPerUser bounds the distinct models one user's usage is counted
// under per UTC day; further models count as OtherModel.
const MaxModelsPerUser = 100

// MaxTrackedModels bounds the distinct (user, model) pairs a ModelBound
// remembers per day, all users together, and so the users it tracks: at
// 128 bytes a model name, about 20 MB a day at most. Once it is reached,
// a user's models not yet seen that day count as OtherModel.
const MaxTrackedModels = 100_000

// ModelBound bounds the distinct model names usage is counted under, per
// user and UTC day. A model name comes from the client or, with a provider
// that answers any name, is chosen by it; without a bound one user could
// make rows and metric series without end. It remembers the current day
// and the one before (for requests that started before midnight), and
// forgets a day when the one after the next begins. The zero value is
// ready to use; it is safe for concurrent use.
type ModelBound struct {
	mu        sync.Mutex
	cur, prev *dayModels
}

// dayModels are the models seen on one day.
type dayModels struct {
	date    string
	seen    map[userModel]struct{} // at most MaxTrackedModels
	perUser map[string]int         // distinct models per user; at most MaxTrackedModels users
}

type userModel struct{ user, model string }

// Model returns the model to count a request of user on date (YYYY-MM-DD)
// under: model itself if the user's usage was counted under it that day
// already, or if the user has fewer than MaxModelsPerUser models that day
// and the day fewer than MaxTrackedModels in all; else OtherModel. A date
// older than the two days remembered counts as OtherModel.
func (b *ModelBound) Model(user, date, model string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.day(date)
	if d == nil {
		return OtherModel
	}
	k := userModel{user, model}
	if _, ok := d.seen[k]; ok {
		return model
	}
	if d.perUser[user] >= MaxModelsPerUser || len(d.seen) >= MaxTrackedModels {
		return OtherModel
	}
	d.seen[k] = struct{}{}
	d.perUser[user]++
	return model
}

// day returns the models of date, starting a new day when date is later
// than the current one, or nil when date is older than both days kept.
func (b *ModelBound) day(date string) *dayModels {
	switch {
	case b.cur != nil && date == b.cur.date:
		return b.cur
	case b.prev != nil && date == b.prev.date:
		return b.prev
	case b.cur == nil || date > b.cur.date: // YYYY-MM-DD sorts by date
		b.prev = b.cur
		b.cur = &dayModels{date: date, seen: make(map[userModel]struct{}), perUser: make(map[string]int)}
		return b.cur
	}
	return nil
}
