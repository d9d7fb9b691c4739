package auth_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/crierhq/crier/auth"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"admin", "admin", true},
		{"admin", "admins", false},
		{"admin", "Admin", false},
		{"user/*", "user/42", true},
		{"user/*", "user/42/inbox", true},
		{"user/*", "user/", true},
		{"user/*", "user", false},
		{"user/*", "users/42", false},
		{"*", "anything at all", true},
		{"*/inbox", "user/42/inbox", true},
		{"*/inbox", "user/42/inbox/old", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYcZ", false},
		{"user/4?", "user/42", false}, // '?' is not special
		{"user/[0-9]", "user/4", false},
		{"çà/*", "çà/été", true},
		{"**", "", true},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := auth.Match(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

func TestMatchIsNotExponential(t *testing.T) {
	pattern := strings.Repeat("a*", 128) + "b"
	topic := strings.Repeat("a", 256)
	if auth.Match(pattern, topic) {
		t.Fatal("matched a topic without b")
	}
}

func TestParsePatterns(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"user/*, admin ,,", "user/*,admin", false},
		{"a\x01b", "", true},
		{strings.Repeat("x", 257), "", true},
		{"\xff", "", true},
	}
	for _, tt := range tests {
		got, err := auth.ParsePatterns(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParsePatterns(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParsePatterns(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
	var none auth.Patterns
	if none.Match("x") {
		t.Error("the empty set matched a topic")
	}
}

// FuzzMatch checks Match against a regular expression built from the same pattern.
func FuzzMatch(f *testing.F) {
	f.Add("user/*", "user/42")
	f.Add("a*b*c", "aXbYc")
	f.Add("**x", "")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		if len(pattern) > 64 || len(topic) > 256 {
			return
		}
		// Match works on bytes; the regexp on runes: compare on valid UTF-8 only.
		if !utf8.ValidString(pattern) || !utf8.ValidString(topic) {
			auth.Match(pattern, topic) // must not panic
			return
		}
		parts := strings.Split(pattern, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re := regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*") + `\z`)
		if got, want := auth.Match(pattern, topic), re.MatchString(topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", pattern, topic, got, want)
		}
	})
}
