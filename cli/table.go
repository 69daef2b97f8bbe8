package cli

// table.go: aligned tables and the cells they show.

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// table writes rows aligned in columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

// row writes one row; empty cells show as "-".
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, cell(c))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// cell makes s safe to show in a column: model names and paths come from
// clients, and a tab, a newline or a terminal escape sequence in one would
// break the table or the terminal. Such a value is shown quoted, Go-style.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// printJSON writes an answer of the admin API as it came, ending in a
// newline.
func printJSON(w io.Writer, raw []byte) error {
	raw = bytes.TrimRight(raw, "\n")
	_, err := w.Write(append(raw, '\n'))
	return err
}

// timeLayout shows times in UTC, to the minute, as the API keeps them.
const timeLayout = "2006-01-02 15:04"

func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// showExpiry shows when a key expires: never, or the time, marked when past.
func showExpiry(t *time.Time, now time.Time) string {
	switch {
	case t == nil:
		return "never"
	case !t.After(now):
		return showTime(*t) + " (expired)"
	}
	return showTime(*t)
}

func showInt(n int64) string { return strconv.FormatInt(n, 10) }

// showList joins a list; nil (the site's default applies) shows as "-".
func showList(list []string) string {
	return strings.Join(list, ",")
}

// showLimits shows a user's own limits, e.g. "rpm 60, tpm 10000, parallel 2".
func showLimits(l *limits) string {
	if l == nil {
		return ""
	}
	var parts []string
	add := func(name string, v *int64) {
		if v != nil {
			parts = append(parts, name+" "+showInt(*v))
		}
	}
	add("rpm", l.RPM)
	add("tpm", l.TPM)
	add("parallel", l.MaxParallel)
	return strings.Join(parts, ", ")
}

// showBudget shows a user's own budget, e.g. "$20, 1000000 tokens / month".
func showBudget(b *budget) string {
	if b == nil {
		return ""
	}
	var parts []string
	if b.USD != nil {
		parts = append(parts, "$"+strconv.FormatFloat(*b.USD, 'f', -1, 64))
	}
	if b.Tokens != nil {
		parts = append(parts, showInt(*b.Tokens)+" tokens")
	}
	if b.Requests != nil {
		parts = append(parts, showInt(*b.Requests)+" requests")
	}
	s := strings.Join(parts, ", ")
	if b.Period != "" {
		s += " / " + b.Period
	}
	return strings.TrimPrefix(s, " ")
}
