//go:build !linux

package hub

import (
	"errors"
	"net"
)

// Without epoll, every hub stream has a goroutine reading its connection to notice the
// client hanging up, and writes wait a moment for room (connSink): still no handler
// goroutine, bufio buffers or timer per stream.

func newSink(conn net.Conn) (sink, int) { return connSink{conn}, -1 }

type watcher struct{}

func newWatcher(*Hub) (*watcher, error) { return nil, errors.New("no watcher on this platform") }

func (*watcher) add(*hstream) error       { return errors.ErrUnsupported }
func (*watcher) remove(*hstream)          {}
func (*watcher) run(stop <-chan struct{}) {}
func (*watcher) close()                   {}

func yieldThread() {}
