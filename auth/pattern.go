// Package auth decides who may follow and publish to private topics: it matches topic
// patterns and verifies the JSON Web Tokens an application's backend issues to its users.
// It knows nothing of HTTP.
package auth

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A pattern is a topic name in which every '*' matches any run of characters, the empty
// run and '/' included; every other character matches itself. There is no escape, no '?'
// and no character class. So "user/*" matches "user/42" and "user/42/inbox", "*" matches
// every topic, and "admin" matches only "admin".
//
// '*' crosses '/' on purpose: declaring "user/*" private must not leave "user/42/inbox"
// public, and granting "user/42/*" grants everything under user/42.

// Match reports whether topic matches pattern.
func Match(pattern, topic string) bool {
	// Greedy matching with backtracking to the last star only: O(len(pattern)*len(topic))
	// at worst, never exponential, whatever the input.
	p, t := 0, 0
	star, mark := -1, 0
	for t < len(topic) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, t
			p++
		case p < len(pattern) && pattern[p] == topic[t]:
			p++
			t++
		case star >= 0:
			mark++
			p, t = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// MaxTopicLen is the longest topic, and so the longest pattern, in characters.
const MaxTopicLen = 256

// CheckTopic reports why s is not a valid topic: 1 to MaxTopicLen characters of valid
// UTF-8, none of them a control character. It is the one statement of the rule.
func CheckTopic(s string) error { return checkTopicLike(s, "topic") }

// CheckPattern reports why s is not a valid pattern: like a topic, it is 1 to
// MaxTopicLen characters of valid UTF-8 with no control characters.
func CheckPattern(s string) error { return checkTopicLike(s, "pattern") }

func checkTopicLike(s, what string) error {
	switch {
	case s == "":
		return errors.New("a " + what + " must not be empty")
	case !utf8.ValidString(s):
		return errors.New("a " + what + " must be valid UTF-8")
	case utf8.RuneCountInString(s) > MaxTopicLen:
		return errors.New("a " + what + " must be at most " + strconv.Itoa(MaxTopicLen) + " characters")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("a " + what + " must not contain control characters")
		}
	}
	return nil
}

// Patterns is a set of patterns; a topic matches the set when it matches any of them.
// The zero value matches nothing.
type Patterns []string

// ParsePatterns reads a comma-separated list of patterns, ignoring blanks around each
// one and empty entries. An empty list gives an empty set.
func ParsePatterns(list string) (Patterns, error) {
	var ps Patterns
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := CheckPattern(p); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether topic matches any pattern of ps.
func (ps Patterns) Match(topic string) bool {
	for _, p := range ps {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// String renders ps as ParsePatterns reads it.
func (ps Patterns) String() string { return strings.Join(ps, ",") }
