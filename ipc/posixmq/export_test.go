package posixmq

// QueueRecords returns how many queue records (registry.go) this process holds.
func QueueRecords() int {
	queueRecs.mu.Lock()
	defer queueRecs.mu.Unlock()
	return len(queueRecs.m)
}
