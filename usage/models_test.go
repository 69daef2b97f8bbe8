package usage

import (
	"fmt"
	"testing"
)

// day3 follows the aggregator tests' day1 and day2.
const day3 = "2030-01-03"

// TestModelBoundPerUser: a user's first MaxModelsPerUser models of a day
// keep their names, later ones count as OtherModel; other users and the
// next day are not affected.
func TestModelBoundPerUser(t *testing.T) {
	var b ModelBound
	for i := range MaxModelsPerUser {
		m := fmt.Sprintf("m%d", i)
		if got := b.Model("ann", day1, m); got != m {
			t.Fatalf("model %d: %q", i, got)
		}
	}
	if got := b.Model("ann", day1, "one-too-many"); got != OtherModel {
		t.Fatalf("model %d of the day: %q, want %q", MaxModelsPerUser+1, got, OtherModel)
	}
	if got := b.Model("ann", day1, "m7"); got != "m7" {
		t.Fatalf("a model seen before the bound: %q", got)
	}
	if got := b.Model("bob", day1, "one-too-many"); got != "one-too-many" {
		t.Fatalf("another user: %q", got)
	}
	if got := b.Model("ann", day2, "one-too-many"); got != "one-too-many" {
		t.Fatalf("the next day: %q", got)
	}
}

// TestModelBoundTotal: once the day holds MaxTrackedModels pairs, models
// new to that day count as OtherModel for every user.
func TestModelBoundTotal(t *testing.T) {
	var b ModelBound
	users := MaxTrackedModels / MaxModelsPerUser
	for u := range users {
		for m := range MaxModelsPerUser {
			b.Model(fmt.Sprintf("u%d", u), day1, fmt.Sprintf("m%d", m))
		}
	}
	if n := len(b.cur.seen); n != MaxTrackedModels {
		t.Fatalf("%d pairs tracked, want %d", n, MaxTrackedModels)
	}
	if got := b.Model("newcomer", day1, "gpt-4o"); got != OtherModel {
		t.Fatalf("a new user on a full day: %q", got)
	}
	if got := b.Model("u3", day1, "m3"); got != "m3" {
		t.Fatalf("a pair seen before: %q", got)
	}
	if len(b.cur.seen) != MaxTrackedModels || len(b.cur.perUser) != users {
		t.Fatalf("the day grew past its bound: %d pairs, %d users", len(b.cur.seen), len(b.cur.perUser))
	}
}

// TestModelBoundDays: a new day starts empty; the day before stays known
// for requests that started before midnight; older days are forgotten.
func TestModelBoundDays(t *testing.T) {
	var b ModelBound
	for i := range MaxModelsPerUser {
		b.Model("ann", day1, fmt.Sprintf("m%d", i))
	}
	if got := b.Model("ann", day2, "fresh"); got != "fresh" {
		t.Fatalf("a new day: %q", got)
	}
	if got := b.Model("ann", day1, "late"); got != OtherModel {
		t.Fatalf("the day before is still bounded: %q", got)
	}
	if got := b.Model("ann", day1, "m5"); got != "m5" {
		t.Fatalf("the day before remembers its models: %q", got)
	}
	b.Model("ann", day3, "x")
	if b.prev.date != day2 || b.cur.date != day3 {
		t.Fatalf("days kept: %s, %s", b.prev.date, b.cur.date)
	}
	if got := b.Model("ann", day1, "m5"); got != OtherModel {
		t.Fatalf("a forgotten day: %q", got)
	}
}
