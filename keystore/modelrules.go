package keystore

// modelrules.go: the one rule for which of several model patterns applies
// to a model name.

import (
	"slices"
	"unicode/utf8"
)

// ModelRules maps model names to values by pattern: the most specific
// pattern matching a name wins. An exact name beats any glob; among globs,
// the one with the most characters that are not wildcards ('*', '?' or a
// [class]); on a tie, the one added later. Prices and routing by model
// both choose this way. Build it with Add, then only Lookup: Lookup is safe
// for concurrent use.
type ModelRules[T any] struct {
	exact map[string]T
	globs []glob[T] // the most specific first, after sort
}

// glob is one glob rule.
type glob[T any] struct {
	pattern  string
	literals int // characters that are not wildcards
	order    int // the rule's place in the order rules were added
	value    T
}

// Add adds a rule; a pattern added again takes the later value.
func (r *ModelRules[T]) Add(pattern string, v T) {
	if !IsModelGlob(pattern) {
		if r.exact == nil {
			r.exact = make(map[string]T)
		}
		r.exact[pattern] = v
		return
	}
	order := len(r.globs)
	if i := slices.IndexFunc(r.globs, func(g glob[T]) bool { return g.pattern == pattern }); i >= 0 {
		r.globs = slices.Delete(r.globs, i, i+1)
	}
	r.globs = append(r.globs, glob[T]{pattern: pattern, literals: literals(pattern), order: order, value: v})
	r.sort()
}

// sort puts the globs in the order lookup tries them: the most literal
// characters first, then the later added.
func (r *ModelRules[T]) sort() {
	slices.SortFunc(r.globs, func(a, b glob[T]) int {
		if a.literals != b.literals {
			return b.literals - a.literals
		}
		return b.order - a.order
	})
}

// Lookup returns the value of the most specific rule matching model.
func (r *ModelRules[T]) Lookup(model string) (T, bool) {
	if v, ok := r.exact[model]; ok {
		return v, true
	}
	for _, g := range r.globs {
		if globMatch(g.pattern, model) {
			return g.value, true
		}
	}
	var zero T
	return zero, false
}

// literals counts the characters of a glob that match only themselves: all
// but '*', '?' and [classes]; an escaped character ("\*") counts as one.
func literals(pattern string) int {
	n := 0
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '*' || c == '?':
		case c == '[':
			for i++; i < len(pattern) && pattern[i] != ']'; i++ {
				if pattern[i] == '\\' {
					i++
				}
			}
		case c == '\\':
			if i+1 < len(pattern) {
				_, size := utf8.DecodeRuneInString(pattern[i+1:])
				i += size
			}
			n++
		case utf8.RuneStart(c):
			n++
		}
	}
	return n
}
