package handlers

import (
	"errors"

	"github.com/crierhq/crier/auth"
	"github.com/crierhq/crier/broker"
)

// Limits on what clients send.
const (
	maxEventLen    = 64  // characters in an event name
	maxKeyLen      = 128 // characters in an Idempotency-Key
	maxTopicsPerID = 64  // topics one stream may follow
)

// checkEventName reports why s is not a name a publisher may give an event.
func checkEventName(s string) error {
	if s == "" || len(s) > maxEventLen {
		return errors.New("an event name must be 1 to 64 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == ':') {
			return errors.New("an event name may hold only letters, digits, '_', '-', '.' and ':'")
		}
	}
	if broker.Reserved(s) {
		return errors.New("the event name " + s + " is reserved")
	}
	return nil
}

// checkIdempotencyKey reports why s is not a valid Idempotency-Key: 1 to 128 printable
// ASCII characters.
func checkIdempotencyKey(s string) error {
	if s == "" || len(s) > maxKeyLen {
		return errors.New("an Idempotency-Key must be 1 to 128 characters")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return errors.New("an Idempotency-Key must hold only printable ASCII characters")
		}
	}
	return nil
}

// parseTopics validates a stream's topic parameters and drops repeats.
func parseTopics(values []string) ([]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	topics := make([]string, 0, len(values))
	seen := make(map[string]bool, len(values))
	for _, t := range values {
		if err := auth.CheckTopic(t); err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			topics = append(topics, t)
		}
	}
	if len(topics) > maxTopicsPerID {
		return nil, errors.New("a stream may follow at most 64 topics")
	}
	return topics, nil
}
