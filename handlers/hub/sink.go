package hub

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// sink is a stream's connection as a writer sees it.
type sink interface {
	// write writes what the connection takes now, without waiting; a short count comes
	// with errAgain.
	write(b []byte) (int, error)
	close() error
}

var errAgain = errors.New("connection not ready for writing")

// connSink writes any net.Conn, waiting at most a moment for room. It serves where a
// raw descriptor is not available.
type connSink struct{ c net.Conn }

func (s connSink) write(b []byte) (int, error) {
	_ = s.c.SetWriteDeadline(time.Now().Add(time.Millisecond))
	n, err := s.c.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errAgain
	}
	return n, err
}

func (s connSink) close() error { return s.c.Close() }

// writeFailed is why a stream ended whose write failed other than for want of room.
func writeFailed(err error) error { return fmt.Errorf("hub: write: %w", err) }
