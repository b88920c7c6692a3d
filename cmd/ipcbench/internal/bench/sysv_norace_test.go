//go:build !race

package bench

const sysvRace = false
