package redisbus

// Vanish stops the bus as a killed process would: no goodbye, connections cut.
func Vanish(bus *Bus) {
	bus.mu.Lock()
	stop := bus.stop
	bus.mu.Unlock()
	stop()
	_ = bus.tail.Close()
	bus.done.Wait()
	bus.close.Do(func() { _ = bus.rdb.Close() })
}
