package broker

import (
	"slices"
	"testing"
)

func TestRoster(t *testing.T) {
	subs := make([]*Subscription, 5)
	for i := range subs {
		subs[i] = &Subscription{id: string(rune('a' + i))}
	}
	ids := func(r *roster) string {
		var b []byte
		for _, s := range r.subs {
			b = append(b, s.id...)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name   string
		add    []int
		remove []int
		want   string
	}{
		{"join order", []int{0, 1, 2, 3}, nil, "abcd"},
		{"added twice counts once", []int{0, 1, 0}, nil, "ab"},
		{"the last one fills a leaver's place", []int{0, 1, 2, 3}, []int{1}, "adc"},
		{"the last one leaving", []int{0, 1, 2}, []int{2}, "ab"},
		{"not a member", []int{0, 1}, []int{4}, "ab"},
		{"everyone leaves", []int{0, 1, 2}, []int{0, 1, 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r roster
			for _, i := range tc.add {
				r.add(subs[i])
			}
			for _, i := range tc.remove {
				r.remove(subs[i])
			}
			if got := ids(&r); got != tc.want || r.len() != len(tc.want) {
				t.Errorf("roster %q (len %d), want %q", got, r.len(), tc.want)
			}
			for i, s := range r.subs {
				if r.pos[s] != i {
					t.Errorf("%s at %d, its position says %d", s.id, i, r.pos[s])
				}
			}
			if len(r.pos) != len(r.subs) || slices.Contains(r.subs, nil) {
				t.Errorf("positions %d for %d members", len(r.pos), len(r.subs))
			}
		})
	}
}
