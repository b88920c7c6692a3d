//go:build race

package bench

// sysvRace: sync.Pool drops items on purpose under the race detector, so allocation
// counts are not meaningful there.
const sysvRace = true
